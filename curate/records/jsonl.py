"""Reading and writing JSON Lines (and JSON arrays) safely.

Reading names the file, line and field of the first bad row, or, with a quarantine,
sets bad rows aside with the reason. Final outputs are written atomically (temp file
+ rename); streams that a long job appends to are flushed per batch, and a torn last
line left by a crash is cut off before appending again.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from curate.errors import InputError, RecordError
from curate.records import validate_record


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """The file's bytes, gunzipped when it ends in .gz."""
    return _open_binary(Path(path))


def is_json_array(path: str | os.PathLike[str]) -> bool:
    """Whether the file (maybe gzipped) holds one JSON array rather than JSON Lines."""
    with _open_binary(Path(path)) as handle:
        return _peek_first_char(handle) == b"["


def _decode(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            str(path), line_no, None, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
        ) from None


def iter_json_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_value)`` for each row of a JSONL or JSON-array file.

    Gzipped input is read transparently. Blank lines are skipped. An empty file, a
    non-UTF-8 byte or malformed JSON raises InputError with the line number.
    """
    path = Path(path)
    line_no = 0
    if not path.exists():
        raise InputError(str(path), None, None, "no such file")
    if path.is_dir():
        raise InputError(str(path), None, None, "is a directory, expected a .jsonl or .json file")
    try:
        with _open_binary(path) as handle:
            first = _peek_first_char(handle)
            if first is None:
                raise InputError(str(path), None, None, "is empty")
            if first == b"[":
                yield from _iter_json_array(path, handle.read())
                return
            seen = False
            for line_no, raw in enumerate(handle, start=1):
                text = _decode(raw, path, line_no).strip()
                if not text:
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as err:
                    raise InputError(str(path), line_no, None, f"malformed JSON at column {err.colno}: {err.msg}") from None
                seen = True
                yield line_no, value
            if not seen:
                raise InputError(str(path), None, None, "is empty")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        # a truncated .gz fails after the last complete line: say where, so the user knows how much is intact
        where = f"after line {line_no}" if line_no else "at the start"
        raise InputError(str(path), None, None, f"not a readable gzip file: the data ends or breaks {where} ({err})") from None


def _peek_first_char(handle: IO[bytes]) -> bytes | None:
    """First non-whitespace byte; rewinds the handle."""
    while True:
        chunk = handle.read(4096)
        if not chunk:
            handle.seek(0)
            return None
        stripped = chunk.lstrip()
        if stripped:
            handle.seek(0)
            return stripped[:1]


def _iter_json_array(path: Path, raw: bytes) -> Iterator[tuple[int, Any]]:
    text = _decode_whole(raw, path)
    decoder = json.JSONDecoder()
    length = len(text)
    counted_to, line_no = 0, 1

    def line_at(at: int) -> int:
        nonlocal counted_to, line_no
        line_no += text.count("\n", counted_to, at)
        counted_to = at
        return line_no

    def skip_ws(at: int) -> int:
        while at < length and text[at] in " \t\r\n":
            at += 1
        return at

    pos = skip_ws(text.index("[") + 1)
    if pos < length and text[pos] == "]":
        raise InputError(str(path), line_at(pos), None, "is an empty JSON array")
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise InputError(str(path), err.lineno, None, f"malformed JSON at column {err.colno}: {err.msg}") from None
        yield line_at(pos), value
        pos = skip_ws(end)
        if pos < length and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < length and text[pos] == "]":
            return
        raise InputError(str(path), line_at(pos), None, "malformed JSON array (expected ',' or ']')")


def _decode_whole(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(str(path), line_no, None, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {column})") from None


class Quarantine:
    """Side file for rows set aside by ``--skip-invalid``: one JSON object per bad row."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.count = 0
        self._handle: IO[str] | None = None

    def add(self, error: InputError, raw: Any = None) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8")
        row = {"file": error.path, "line": error.line, "field": error.field, "reason": error.reason, "row": raw}
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_valid(
    path: str | os.PathLike[str],
    convert: Callable[[Any], Any],
    quarantine: Quarantine | None = None,
) -> Iterator[tuple[int, Any]]:
    """Apply ``convert`` to each row; a RecordError becomes an InputError at that line.

    With a quarantine, bad rows (including unparsable lines) go there and reading goes on.
    """
    rows = iter_json_rows(path)
    while True:
        try:
            line_no, value = next(rows)
        except StopIteration:
            return
        except InputError as err:
            if quarantine is None or err.line is None or "JSON array" in err.reason:
                raise
            quarantine.add(err)
            rows = _resume_after(path, err.line)
            continue
        try:
            yield line_no, convert(value)
        except RecordError as err:
            error = InputError(str(path), line_no, err.field, err.reason)
            if quarantine is None:
                raise error from None
            quarantine.add(error, value)


def _resume_after(path: str | os.PathLike[str], bad_line: int) -> Iterator[tuple[int, Any]]:
    """Continue a JSONL read after a line that could not be decoded or parsed."""
    path = Path(path)
    with _open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no <= bad_line:
                continue
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise InputError(
                    str(path), line_no, None, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
                ) from None
            if not text:
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(str(path), line_no, None, f"malformed JSON at column {err.colno}: {err.msg}") from None


def read_records(
    path: str | os.PathLike[str], quarantine: Quarantine | None = None, check_id: bool = True
) -> Iterator[dict[str, Any]]:
    """Yield validated records from a curate JSONL file."""
    for _, record in iter_valid(path, lambda value: validate_record(value, check_id=check_id), quarantine):
        yield record


def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temp file beside ``path`` and rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes 0600 files; give the result the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> int:
    """Atomically write rows as JSONL; returns the count."""
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(dumps(row) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Atomically write one pretty-printed JSON document."""
    with atomic_writer(path) as handle:
        json.dump(value, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


class AppendLog:
    """An append-only JSONL stream for long jobs: flushed and fsynced per batch.

    Opening it cuts off a torn last line (a crash mid-write) so that appending again
    never glues two rows together; ``existing()`` returns the complete rows already there.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)

    def existing(self) -> list[Any]:
        rows = []
        with self.path.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    rows.append(json.loads(raw))
        return rows

    def write_many(self, rows: Iterable[Any]) -> None:
        self._handle.write("".join(dumps(row) + "\n" for row in rows))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
