"""Records from wherever the data is: the one entry point every command that reads records uses.

    from curate.records.sources import open_records
    stream = open_records("alpaca.parquet")      # or data.jsonl.gz, rows.json, a folder, ORG/NAME:config@split
    print(stream.notice())                       # "alpaca.parquet: Parquet, alpaca format (detected), converted"
    for record in stream: ...

Containers (read through pyarrow and ``datasets``, no parser of ours beyond JSON Lines):

- a JSONL file or a JSON array, optionally gzipped;
- a Parquet file, or a folder of Parquet/JSONL shards (``data/*.parquet`` as on the hub, a card beside it
  or not, and ``curate export`` folders);
- an Arrow folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (``@split`` picks a split);
- a hub dataset id ``ORG/NAME[:config][@split]``, loaded from the local ``datasets`` cache when it is there
  (no network needed), else downloaded by ``datasets``; offline and not cached is a one-line error.

Formats are detected from the first row (or given): curate records pass through as they are; Alpaca,
Self-Instruct seeds, ShareGPT, Dolly, prompt/completion, chat ``messages`` (which covers OpenAI's chat
fine-tuning JSONL) are converted, with ``meta.source`` = where the rows came from (file stem, folder
name or hub id) and ``meta.format`` = the format they had. Errors name the file and line (JSON) or the
file and row (Parquet, Arrow, hub: ``file:row N``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, InputError, RecordError
from curate.records.formats import Format, detect_format, get_format
from curate.records.jsonl import Quarantine, dumps, iter_json_rows, iter_valid
from curate.records.schema import RECORD_KEYS, validate_record

BATCH_ROWS = 1000
_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[\w.-]+))?$")
SPLIT_ORDER = ("train", "validation", "test")


@dataclass
class Position:
    """Where a row is: ``file:line`` for JSON, ``file:row N`` for columnar containers."""

    path: str
    index: int
    columnar: bool = False

    def error(self, field_name: str | None, reason: str) -> InputError:
        where = f"{self.path}:row {self.index}" if self.columnar else self.path
        return InputError(where, None if self.columnar else self.index, field_name, reason)


@dataclass
class Container:
    """A resolved source: what it is, a display name, and how to iterate its raw rows."""

    spec: str
    kind: str  # jsonl | parquet | shards | arrow | hub
    name: str  # what meta.source says: file stem, folder name or hub id
    files: list[Path] = field(default_factory=list)
    split: str | None = None
    config: str | None = None
    license: str | None = None  # what the source's own card or dataset info says, when it says


# -- resolving what the user named -------------------------------------------------------------

def resolve(spec: str | os.PathLike[str]) -> Container:
    """What ``spec`` names, or a CurateError saying why it cannot be read."""
    text = str(spec)
    path, split = Path(text), None
    if not path.exists() and "@" in path.name and Path(text.rsplit("@", 1)[0]).exists():
        text, split = text.rsplit("@", 1)  # a local folder with @split
        path = Path(text)
    if path.is_file():
        if path.name.endswith(".parquet"):
            return Container(text, "parquet", file_stem(path), [path])
        return Container(text, "jsonl", file_stem(path), [path])
    if path.is_dir():
        return _resolve_folder(text, path, split)
    match = _HUB_ID.match(text)
    if match and not text.startswith((".", "/")) and not text.endswith(_JSON_SUFFIXES + (".parquet",)):
        return Container(text, "hub", match["repo"], split=match["split"], config=match["config"])
    raise InputError(text, None, None, "no such file or folder (nor a hub dataset id ORG/NAME[:config][@split])")


def file_stem(path: str | os.PathLike[str]) -> str:
    """The stem rule (``curated.jsonl.gz`` -> ``curated``), used through ``curate.runs.names.stem`` too.

    It lives here, at the base, because the base names sources by it; everything above says
    ``names.stem``. A name without a data suffix is its own stem.
    """
    name = Path(path).name.removesuffix(".gz")
    for suffix in (".jsonl", ".json", ".ndjson", ".parquet"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _resolve_folder(text: str, path: Path, split: str | None) -> Container:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return Container(text, "arrow", path.name, split=split)
    for data in (path / "data", path):
        if not data.is_dir():
            continue
        shards = _shard_files(data, split)
        if shards:
            return Container(text, "shards", path.name, shards, split, license=card_license(path / "README.md"))
    raise InputError(text, None, None, "is a folder with no records in it (expected data/*.parquet, *.parquet, "
                     "*.jsonl, or an Arrow folder from Dataset.save_to_disk)")


def card_license(card: Path) -> str | None:
    """The ``license:`` of a dataset card's YAML front matter (a hub-style folder's README.md), if any."""
    if not card.is_file():
        return None
    import yaml

    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    try:
        front = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return None
    return _licence(front.get("license") if isinstance(front, dict) else None)


def _licence(value: Any) -> str | None:
    """A declared licence id, or None for none, several, or "other"/"unknown" (nothing to derive from)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or value.strip().lower() in ("", "other", "unknown"):
        return None
    return value.strip()


def _shard_files(folder: Path, split: str | None) -> list[Path]:
    """Parquet files (else JSON files) of a folder, train before validation before test, then by name."""
    for pattern in ("*.parquet", "*.jsonl", "*.jsonl.gz", "*.json"):
        files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
        if pattern == "*.json":
            files = [p for p in files if p.name not in ("dataset_info.json", "state.json", "dataset_dict.json")]
        if files:
            break
    else:
        return []

    def split_of(p: Path) -> str:
        return re.split(r"[-_.]", p.name, maxsplit=1)[0]

    if split is not None:
        files = [p for p in files if split_of(p) == split]
        if not files:
            raise CurateError(f"{folder}: no shard of split {split!r}")
    return sorted(files, key=lambda p: (SPLIT_ORDER.index(split_of(p)) if split_of(p) in SPLIT_ORDER else 3,
                                        p.name))


# -- raw rows -----------------------------------------------------------------------------------

def iter_raw_rows(container: Container) -> Iterator[tuple[Position, Any]]:
    """Every row of the container, with its position, before any format conversion."""
    if container.kind == "arrow":
        yield from _arrow_rows(container)
    elif container.kind == "hub":
        yield from _hub_rows(container)
    else:
        for path in container.files:
            if path.name.endswith(".parquet"):
                yield from _parquet_rows(path)
            else:
                for line_no, value in iter_json_rows(path):
                    yield Position(str(path), line_no), value


def _parquet_rows(path: Path) -> Iterator[tuple[Position, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(str(path), None, None, f"not a readable Parquet file ({err})") from None
    yield from _table_rows(str(path), parquet.iter_batches(batch_size=BATCH_ROWS))


def _table_rows(where: str, batches: Any) -> Iterator[tuple[Position, Any]]:
    row_no = 0
    for batch in batches:
        for row in batch.to_pylist():
            row_no += 1
            yield Position(where, row_no, columnar=True), _drop_nulls(row)


def _drop_nulls(row: dict[str, Any]) -> dict[str, Any]:
    """Columnar rows carry every column in every row; a null stands for "absent" (JSON would omit it)."""
    out = {}
    for key, value in row.items():
        if value is None:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            value = [{k: v for k, v in item.items() if v is not None} for item in value]
        out[key] = value
    return out


def _pick_split(splits: list[str], wanted: str | None, where: str) -> str:
    if wanted is not None:
        if wanted not in splits:
            raise CurateError(f"{where}: no split {wanted!r} (has: {', '.join(splits)})")
        return wanted
    return next((s for s in SPLIT_ORDER if s in splits), splits[0])


def _arrow_rows(container: Container) -> Iterator[tuple[Position, Any]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(container.spec)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise InputError(container.spec, None, None, f"not a readable save_to_disk folder ({err})") from None
    where = container.spec
    if isinstance(loaded, datasets.DatasetDict):
        split = _pick_split(list(loaded), container.split, container.spec)
        loaded, where = loaded[split], f"{container.spec}@{split}"
    container.license = _licence(loaded.info.license)
    yield from _table_rows(where, loaded.with_format("arrow").iter(batch_size=BATCH_ROWS))


def _hub_rows(container: Container) -> Iterator[tuple[Position, Any]]:
    dataset = load_hub_dataset(container.name, container.config, container.split)
    container.license = _licence(dataset.info.license)
    where = f"{container.spec}" if container.split else f"{container.name}@{dataset.split}"
    yield from _table_rows(where, dataset.with_format("arrow").iter(batch_size=BATCH_ROWS))


def load_hub_dataset(repo: str, config: str | None, split: str | None) -> Any:
    """A hub dataset through ``datasets``: its local cache first (works offline), else the hub."""
    import datasets

    cached = _cached_builder(repo, config)
    if cached is not None:
        splits = list(cached.info.splits or {})
        return cached.as_dataset(split=_pick_split(splits, split, repo))
    if not _hub_reachable():
        raise CurateError(f"{repo}: not cached and no network (the datasets cache "
                          f"{datasets.config.HF_DATASETS_CACHE} has no copy, and the hub cannot be reached)")
    try:
        loaded = datasets.load_dataset(repo, config)
    except (ConnectionError, OSError) as err:
        raise CurateError(f"{repo}: not cached and no network ({str(err).splitlines()[0]})") from None
    except (FileNotFoundError, ValueError) as err:
        raise CurateError(f"{repo}: {str(err).splitlines()[0]}") from None
    return loaded[_pick_split(list(loaded), split, repo)]


def _cached_builder(repo: str, config: str | None) -> Any | None:
    """datasets' own offline reader (its Cache builder) over the cached copy, or None when there is none."""
    import datasets
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.cache.cache import Cache

    namespace, name = repo.split("/")

    root = Path(datasets.config.HF_DATASETS_CACHE) / f"{namespace}___{camelcase_to_snakecase(name)}"
    if not any(p.is_dir() for p in root.glob("*/*/*")):
        return None
    try:
        return Cache(repo_id=repo, dataset_name=name, config_name=config, version="auto", hash="auto")
    except ValueError as err:  # e.g. the config asked for is not cached
        raise CurateError(f"{repo}: {str(err).splitlines()[0]}") from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection to the hub endpoint (datasets itself would retry for a minute before failing)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


# -- converting rows into records ---------------------------------------------------------------

RECORDS = "records"  # curate's own records: passed through, validated
_CURATE_ID = re.compile(r"^[0-9a-f]{32}$")  # schema.record_id's shape
EXPORT_ROWS = "curate-export"  # rows of a `curate export` shard: meta as a JSON string


def row_kind(row: Any) -> str:
    """'records', 'curate-export', or the name of the foreign format of a sample row."""
    if isinstance(row, Mapping) and {"id", "messages", "meta"} <= set(row):
        if isinstance(row["meta"], str):
            return EXPORT_ROWS
        if set(row) <= {*RECORD_KEYS, "reject"} and isinstance(row["meta"], Mapping):
            return RECORDS
    return detect_format(row).name


@dataclass
class RecordStream:
    """Records from one source; iterate it once. ``format`` is known after :meth:`peek`."""

    container: Container
    format: str
    detected: bool
    quarantine: Quarantine | None = None
    check_id: bool = True
    source_name: str | None = None
    count: int = 0

    def notice(self) -> str:
        kinds = {"jsonl": "JSON", "parquet": "Parquet", "shards": "shards", "arrow": "Arrow (save_to_disk)",
                 "hub": "hub dataset"}
        how = "detected" if self.detected else "given"
        what = ("curate records" if self.format == RECORDS else "a curate export" if self.format == EXPORT_ROWS
                else f"{self.format} ({how}), converted to records")
        return f"{self.container.spec}: {kinds[self.container.kind]}; format: {what}"

    @property
    def name(self) -> str:
        return self.source_name or self.container.name

    def evidence(self) -> dict[str, Any]:
        """What `curate import` records about this source (written beside its output as STEM.import.json).

        Only names, never local paths: the file may travel into a published dataset's provenance/.
        """
        spec = self.container.spec if self.container.kind == "hub" else Path(self.container.spec).name
        return {"name": self.name, "source": spec, "container": self.container.kind, "format": self.format,
                "format_detected": self.detected, "rows": self.count, "license": self.container.license}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _, record in self.rows():
            yield record

    def rows(self) -> Iterator[tuple[Position, dict[str, Any]]]:
        """(position, record) pairs; a bad row is an error at its position, or quarantined."""
        convert = self._converter()
        if self.container.kind == "jsonl":  # iter_valid also quarantines lines that do not parse
            for line_no, record in iter_valid(self.container.files[0], convert, self.quarantine):
                self.count += 1
                yield Position(str(self.container.files[0]), line_no), record
            return
        for position, row in iter_raw_rows(self.container):
            try:
                record = convert(row)
            except RecordError as err:
                error = position.error(err.field, err.reason)
                if self.quarantine is None:
                    raise error from None
                self.quarantine.add(error, row)
                continue
            self.count += 1
            yield position, record

    def _converter(self) -> Any:
        if self.format == RECORDS:
            return lambda row: validate_record(row, check_id=self.check_id)
        if self.format == EXPORT_ROWS:
            from curate.records.shards import row_to_record

            return row_to_record
        fmt: Format = get_format(self.format)
        name = self.name

        def convert(row: Any) -> dict[str, Any]:
            record = fmt.to_record(row)
            meta = record["meta"]
            record["meta"] = {"source": meta.get("source", name), **meta}  # source first: one key order
            return record

        return convert


def _check_one_kind(container: Container) -> None:
    """A folder of JSON files is shards only when every file holds the same kind of row.

    A run folder (curated.jsonl beside rejected.jsonl, errors.jsonl, manifest.json, ...) is not
    a dataset: reading it whole would mix kept and rejected rows, so name the file instead.
    """
    files = [p for p in container.files if not p.name.endswith(".parquet")]
    if container.kind != "shards" or len(files) < 2:
        return
    kinds: dict[str, str] = {}
    for path in files:
        try:
            kinds[path.name] = next((row_kind(row) + (" (rejected)" if isinstance(row, Mapping) and "reject" in row
                                                      else "") for _, row in iter_json_rows(path)), "empty")
        except CurateError:
            kinds[path.name] = "not records"
    if len(set(kinds.values())) > 1:
        found = ", ".join(f"{name}: {kind}" for name, kind in list(kinds.items())[:6])
        raise InputError(container.spec, None, None, f"its files hold different kinds of rows ({found}); "
                         "name the file to read (for a run folder: FOLDER/curated.jsonl)")


def _valid_record(row: Any, check_id: bool) -> bool:
    try:
        validate_record(row, check_id=check_id)
    except RecordError:
        return False
    return True


def open_records(source: str | os.PathLike[str], format_name: str = "auto", *,
                 quarantine: Quarantine | None = None, check_id: bool = True,
                 source_name: str | None = None) -> RecordStream:
    """Open any supported source as a stream of records (see the module docstring).

    ``format_name`` is ``auto`` (detect from the first row), ``records`` or a format of
    :mod:`curate.records.formats`. ``source_name`` overrides what ``meta.source`` says.
    """
    container = resolve(source)
    _check_one_kind(container)
    if format_name != "auto":
        if format_name not in (RECORDS, EXPORT_ROWS):
            get_format(format_name)
        return RecordStream(container, format_name, False, quarantine, check_id, source_name)
    for position, row in iter_raw_rows(container):
        try:
            kind = row_kind(row)
        except CurateError as err:
            raise position.error(None, str(err)) from None
        if kind == RECORDS and not _CURATE_ID.match(str(row.get("id"))) and not _valid_record(row, check_id):
            kind = "messages"  # shaped like ours but not ours (another tool's ids): converted, ids kept in meta
        # (a curate-shaped id that does not match is a hand edit: the records reader says so at its line)
        return RecordStream(container, kind, True, quarantine, check_id, source_name)
    raise InputError(str(source), None, None, "is empty")


def is_records_file(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a plain JSONL/JSON file of curate records (the fast path of filter and friends)."""
    try:
        container = resolve(source)
        if container.kind != "jsonl":
            return False
        for _, row in iter_raw_rows(container):
            return row_kind(row) == RECORDS
    except CurateError:
        return True  # let the caller's own reader report the problem at its line
    return True



@contextlib.contextmanager
def records_file(source: str | os.PathLike[str], say: Callable[[str], None] | None = None,
                 check_id: bool = True) -> Iterator[Path]:
    """A curate-records JSONL path for ``source``: itself when it is one, else a converted temporary copy.

    For commands whose fast path reads JSON Lines of records (filter keeps rows byte-identical);
    anything else (Parquet, Arrow, a hub id, Alpaca JSON, ...) goes through :func:`open_records`
    once, with the one-line notice passed to ``say``. The copy is removed afterwards.
    """
    if is_records_file(source):
        yield Path(source)
        return
    stream = open_records(source, check_id=check_id)
    if say is not None:
        say(stream.notice() + " (`curate import` writes them to a file of their own)")
    folder = Path(tempfile.mkdtemp(prefix="curate-in-"))
    try:
        path = folder / f"{stream.name.replace('/', '__')}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for record in stream:
                handle.write(dumps(record) + "\n")
        if stream.count == 0:
            raise InputError(str(source), None, None, "has no records")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
