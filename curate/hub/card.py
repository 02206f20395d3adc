"""The dataset card (README.md) of an exported folder: hub metadata plus how the data was made.

Called by ``curate.hub.export.export_records``; nothing here is typed by hand. The YAML front
matter (licence, language, task, size, tags, ``configs`` pointing at the shards,
``dataset_info`` features) is derived from the data, and the body from the files the
stages wrote beside it (``manifest.json``, ``filter_config.yaml``, ``filter_report.json``,
``rejected.jsonl``); what is absent is said to be absent.

An existing README.md is merged, never overwritten: its metadata keys are kept (lists
such as ``tags`` are unioned; only ``configs[default]``, ``dataset_info`` and
``size_categories``, which describe the data, are replaced), and its prose is kept with
our section between ``<!-- curate:begin -->`` and ``<!-- curate:end -->`` markers, which
later exports replace in place. The result is checked with huggingface_hub's
``DatasetCard``/``DatasetCardData`` and with the parser ``datasets`` itself uses for
``configs`` and ``dataset_info``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from curate.errors import CurateError
from curate.hub.facts import CardFacts, gather
from curate.records.jsonl import atomic_writer
from curate.runs.evidence import Funnel, RunFiles, compute_funnel, summarize
from curate.runs.redact import redact_text

if TYPE_CHECKING:
    from curate.hub.scan import ExportConfig, ScanResult

BEGIN, END = "<!-- curate:begin -->", "<!-- curate:end -->"
SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
]
BASE_TAGS = ["curate", "sft", "instruction-tuning"]  # "synthetic" only for rows curate generate made
# Keys whose values are lists the user may have extended: we add ours, never drop theirs.
_UNION_KEYS = ("tags", "task_categories", "annotations_creators", "language_creators")
# Keys that describe the data itself and so follow the data.
_DATA_KEYS = ("size_categories", "dataset_info")
MAX_EXAMPLE_CHARS = 400

_COLUMN_HELP = {
    "id": "content hash of the normalized conversation (stable across runs)",
    "messages": "the conversation as `[{role, content}]` (Hugging Face chat format; TRL trains on it directly)",
    "scores": "quality scores (e.g. LLM-judge rating, IFD); null where a row was not scored",
    "meta": "the full provenance object as a JSON string (`json.loads` it); the source of truth",
}


def write_card(
    out: Path,
    config: ExportConfig,
    files: RunFiles,
    scan: ScanResult,
    splits: dict[str, int],
    split_bytes: dict[str, int],
    shards: dict[str, list[Path]],
    schema: Any,
    evidence: list[Path],
    existing: tuple[dict[str, Any], str] | None = None,
) -> Path:
    """Build, merge (with ``existing``, else the card on disk), validate and atomically write ``out/README.md``."""
    path = out / "README.md"
    existing_meta, existing_text = existing if existing is not None else read_existing_card(path)
    funnel = compute_funnel(files, kept=sum(splits.values()))
    facts = gather(files, scan.stats, config.license)
    ours = card_metadata(config, facts, splits, split_bytes, shards, schema, config.out.name)  # out may be a staging folder
    metadata = merge_metadata(existing_meta, ours, explicit={"license": config.license,
                                                             "pretty_name": config.pretty_name,
                                                             "language": config.language})
    section = card_body(config, facts, files, scan, splits, funnel, evidence, metadata)
    title = f"# {metadata.get('pretty_name') or config.out.name}\n\n"
    text = merge_text(existing_text, section, title)
    content = render_card(metadata, text)
    validate_card(content, out, schema)
    with atomic_writer(path) as handle:
        handle.write(redact_text(content))  # a key in a stage file or an old card never reaches the hub
    return path


# -- metadata -----------------------------------------------------------------------------

def read_existing_card(path: Path) -> tuple[dict[str, Any], str]:
    """(metadata, body) of an existing card; a card we cannot parse stops the export."""
    if not path.is_file():
        return {}, ""
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard.load(path)
    except (ValueError, yaml.YAMLError) as err:
        raise CurateError(f"{path}: the existing card's YAML does not parse ({str(err).splitlines()[0]}); "
                          "fix or move it, it is never overwritten") from None
    return card.data.to_dict(), card.text


def size_category(count: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if count < limit:
            return name
    return "n>1T"


def card_metadata(
    config: ExportConfig,
    facts: CardFacts,
    splits: dict[str, int],
    split_bytes: dict[str, int],
    shards: dict[str, list[Path]],
    schema: Any,
    default_name: str,
) -> dict[str, Any]:
    """The YAML front matter this export would write on a blank card."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo

    split_dict = SplitDict()
    for split, count in splits.items():
        split_dict.add(SplitInfo(name=split, num_bytes=split_bytes[split], num_examples=count))
    download = sum(p.stat().st_size for paths in shards.values() for p in paths)
    info = DatasetInfo(features=Features.from_arrow_schema(schema), splits=split_dict,
                       download_size=download, dataset_size=sum(split_bytes.values()))
    meta: dict[str, Any] = {
        "pretty_name": config.pretty_name or default_name,
        "license": facts.license,
        "language": config.language or ["en"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(sum(splits.values()))],
        "tags": (["synthetic"] if facts.generated else []) + list(BASE_TAGS),
    }
    if facts.generated:
        meta["annotations_creators"] = ["machine-generated"]
        meta["language_creators"] = ["machine-generated"]
    meta["configs"] = [{
        "config_name": "default",
        "data_files": [{"split": split, "path": f"data/{split}-*"} for split in splits],
    }]
    meta["dataset_info"] = info._to_yaml_dict()
    return meta


def merge_metadata(existing: Mapping[str, Any], ours: Mapping[str, Any],
                   explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Existing keys win except where the flag was given or the key describes the data."""
    explicit = {k: v for k, v in (explicit or {}).items() if v}
    merged: dict[str, Any] = dict(existing)
    for key, value in ours.items():
        if key not in existing or key in explicit or key in _DATA_KEYS:
            merged[key] = value
        elif key in _UNION_KEYS:
            mine = existing[key] if isinstance(existing[key], list) else [existing[key]]
            merged[key] = mine + [v for v in value if v not in mine]
        elif key == "configs":
            merged[key] = _merge_configs(existing[key], value)
    if isinstance(existing.get("dataset_info"), list):
        merged["dataset_info"] = _merge_named(existing["dataset_info"], {"config_name": "default", **ours["dataset_info"]})
    return merged


def _merge_configs(existing: Any, ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(existing, list):
        return ours
    names = {c.get("config_name") for c in ours}
    return ours + [c for c in existing if not (isinstance(c, Mapping) and c.get("config_name", "default") in names)]


def _merge_named(existing: list[Any], entry: dict[str, Any]) -> list[Any]:
    kept = [e for e in existing if not (isinstance(e, Mapping) and e.get("config_name", "default") == "default")]
    return [entry, *kept]


def merge_text(existing: str, section: str, title: str) -> str:
    """Our section replaces its previous copy between markers; the owner's prose stays."""
    block = f"{BEGIN}\n{section.strip()}\n{END}\n"
    if BEGIN in existing and END in existing:
        start, end = existing.index(BEGIN), existing.index(END) + len(END)
        return existing[:start] + block.rstrip("\n") + existing[end:]
    if existing.strip():
        return existing.rstrip() + "\n\n" + block
    return "\n" + title + block


def render_card(metadata: Mapping[str, Any], text: str) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(**metadata)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{text}").content


def validate_card(content: str, folder: Path, schema: Any) -> None:
    """Parse the card back with the hub's and datasets' own tools; a problem is our bug, so say so."""
    from datasets import DatasetInfo, Features
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    try:
        card = DatasetCard(content)
        data = card.data.to_dict()
        DatasetCardData(**data)
        for size in data.get("size_categories") or []:
            if size not in {name for _, name in SIZE_CATEGORIES} | {"n>1T", "other"}:
                raise ValueError(f"size_categories: unknown value {size!r}")
        configs = MetadataConfigs.from_dataset_card_data(card.data)
        for pattern in _patterns(configs["default"].get("data_files", [])):  # the owner's configs may be remote
            if not list(folder.glob(pattern)):
                raise ValueError(f"configs[default]: {pattern} matches no file")
        info = data.get("dataset_info")
        if isinstance(info, list):
            info = next(i for i in info if i.get("config_name", "default") == "default")
        features = DatasetInfo._from_yaml_dict(dict(info)).features
        if features != Features.from_arrow_schema(schema):
            raise ValueError("dataset_info.features do not match the shards' schema")
    except (ValueError, KeyError, StopIteration, yaml.YAMLError) as err:
        raise CurateError(f"the dataset card does not validate: {err}") from None


def _patterns(data_files: Any) -> list[str]:
    """The path patterns of a ``data_files`` entry in any of the forms the hub accepts."""
    if isinstance(data_files, (str, Mapping)):
        data_files = [data_files]
    patterns: list[str] = []
    for entry in data_files:
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        patterns += [path] if isinstance(path, str) else list(path or [])
    return patterns


# -- formatting ---------------------------------------------------------------------------

def _compact(value: Any, limit: int = 300, nested: bool = False) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={_compact(v, 80, True)}" for k, v in value.items())
        text = f"{{{text}}}" if nested else text
    elif isinstance(value, list):
        text = ", ".join(_compact(v, 80, True) for v in value)
        text = f"[{text}]" if nested else text
    elif isinstance(value, str) and nested:
        text = json.dumps(value, ensure_ascii=False) if not value.isprintable() or not value.strip() else value
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(value: Any) -> str:
    return _compact(value).replace("|", "\\|").replace("\n", " ")


def _name(path: Any) -> str:
    """A file's name, never its path: a card is published and local paths are nobody's business."""
    return Path(str(path)).name


# -- the body -----------------------------------------------------------------------------

def _fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(number: float) -> str:
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.2f}"


def card_body(config: ExportConfig, facts: CardFacts, files: RunFiles, scan: ScanResult, splits: dict[str, int],
              funnel: Funnel | None, evidence: list[Path], metadata: Mapping[str, Any]) -> str:
    total = sum(splits.values())
    split_text = ", ".join(f"{n:,} {s}" for s, n in splits.items())
    made = f"generated by `{facts.teacher}`, " if facts.generated and facts.teacher else ""
    parts = [
        f"{total:,} conversations for supervised fine-tuning ({split_text}), {made}made with `curate` "
        f"({' → '.join(facts.stages)}). Everything below is read from the files the stages wrote"
        + ("; the originals are in `provenance/`." if evidence else "."),
        _sources_section(facts),
        _usage_section(config, splits),
        _columns_section(scan),
        _provenance_section(files, facts, evidence),
        _funnel_section(funnel, files),
        _stats_section(scan),
        _examples_section(scan),
        _licence_section(facts, metadata),
        _limitations_section(files, facts, funnel),
    ]
    if evidence:
        parts.append("## Provenance files\n\nThe stage files as written (local paths cut to file names): "
                     + ", ".join(f"[`{p.name}`](provenance/{p.name})" for p in evidence) + ".")
    return "\n\n".join(p for p in parts if p)


def _sources_section(facts: CardFacts) -> str:
    rows = [[source, f"{count:,}"] for source, count in facts.sources.items()]
    text = "## Sources\n\n" + (_table(["`meta.source`", "rows"], rows) if rows else "No row names its source.")
    if facts.formats:
        text += "\n\nImported from these formats (`meta.format`): " + ", ".join(
            f"{name} {count:,}" for name, count in facts.formats.items()) + "."
    text += ("\n\nResponses are machine-generated (by `curate generate`)." if facts.generated else
             "\n\nNo generation manifest came with the data: curate did not generate these rows.")
    return text


def _usage_section(config: ExportConfig, splits: dict[str, int]) -> str:
    name = config.repo_id or config.out.name
    code = (f'from datasets import load_dataset\n\nds = load_dataset("{name}")\n'
            f'row = ds["{next(iter(splits))}"][0]\nrow["messages"]             # [{{"role": "user", ...}}, ...]\n'
            'import json; json.loads(row["meta"])  # full provenance of the row')
    return ("## Load it\n\n" + _fence(code, "python") +
            "\n\n`curate import` reads this folder back into identical curate records. "
            "For LLaMA-Factory, `dataset_info.json` here is a ready entry (use this folder as `dataset_dir`); "
            "for Axolotl, `axolotl.yaml` holds the `datasets:` block.")


def _provenance_section(files: RunFiles, facts: CardFacts, evidence: list[Path]) -> str:
    parts = ["## How the data was made"]
    links = {p.name: f"[`provenance/{p.name}`](provenance/{p.name})" for p in evidence}
    manifest = files.manifest
    if manifest is not None:
        config = manifest.config
        rows = [["teacher model", manifest.teacher], ["engine", manifest.engine],
                ["seed file", f"{facts.seeds} ({manifest.seeds_count} tasks)" if facts.seeds else None],
                ["seed file sha256", manifest.seeds_sha256], ["preset", manifest.preset],
                ["target instructions", config.get("num_instructions")],
                ["novelty threshold (ROUGE-L)", config.get("novelty_threshold")],
                ["sampling: instructions", config.get("instructions")], ["sampling: instances", config.get("instances")],
                ["requests / rows", f"{manifest.totals.get('requests')} / {manifest.totals.get('rows')}"]]
        parts.append(f"### Generation ({links.get('manifest.json', '`manifest.json`')})\n\n"
                     + _table(["setting", "value"], [r for r in rows if r[1] is not None]))
    settings, report = files.filter_config, files.filter_report
    if settings is not None or report is not None:
        rows = []
        if settings is not None:
            dedup = settings.dedup or {}
            rows += [["preset", settings.preset], ["filters", ", ".join(settings.filters) or "none"],
                     ["thresholds", settings.thresholds or None], ["exact dedup", settings.exact_dedup],
                     ["near-duplicate dedup", {k: dedup[k] for k in ("threshold", "ngram", "num_perm", "keep")
                                               if k in dedup} or None],
                     ["decontaminated against", ", ".join(_name(p) for p in settings.decontaminate) or None],
                     ["deduplicated against", ", ".join(_name(p) for p in settings.against) or None]]
        if report is not None:
            rows += [["rows in / kept", f"{report.rows_in} / {report.kept}"]]
        name = (settings or report).doc.path.name  # type: ignore[union-attr]
        parts.append(f"### Filtering ({links.get(name, f'`{name}`')})\n\n"
                     + _table(["setting", "value"], [r for r in rows if r[1] is not None]))
    if len(parts) == 1:
        parts.append("No stage manifest or filter report came with the data; each row's `meta` column says where "
                     "it came from.")
    return "\n\n".join(parts)


def _funnel_section(funnel: Funnel | None, files: RunFiles) -> str:
    if funnel is None or not (funnel.steps or funnel.generated is not None):
        return ""
    rows: list[list[Any]] = [[funnel.rows()[0][0], f"{funnel.start:,}", "", ""]]
    for step in funnel.steps:
        reasons = ", ".join(f"{r} {n:,}" for r, n in list(step.reasons.items())[:6])
        rows.append([step.stage, f"{step.remaining:,}", f"−{step.rejected:,}", reasons])
    rows.append(["**kept**", f"**{funnel.kept:,}**", "", ""])
    text = "## Funnel\n\n" + _table(["stage", "rows", "removed", "reasons"], rows)
    notes = []
    generation = files.manifest.rejected if files.manifest else {}
    if generation:
        notes.append("Before rows were written, generation itself dropped candidates: "
                     + ", ".join(f"{r} {n:,}" for r, n in list(generation.items())[:6]) + ".")
    if funnel.errors:
        notes.append(f"{funnel.errors:,} generation requests failed (`errors.jsonl`; they never became rows).")
    if funnel.unaccounted:
        notes.append(f"**{funnel.unaccounted:,} generated rows are neither kept nor rejected**: the filter "
                     "output and the generated file may come from different runs.")
    return text + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "")


def _columns_section(scan: ScanResult) -> str:
    plan = scan.plan
    rows = [["id", "string", _COLUMN_HELP["id"]], ["messages", "list of {role, content}", _COLUMN_HELP["messages"]]]
    if plan.score_kinds:
        kinds = ", ".join(f"{n}: {t}" for n, t in plan.score_types.items())
        rows.append(["scores", f"struct ({kinds})", _COLUMN_HELP["scores"]])
    rows.append(["meta", "string (JSON)", _COLUMN_HELP["meta"]])
    text = "## Columns\n\n" + _table(["column", "type", "what it holds"], rows)
    if plan.promoted:
        text += ("\n\nTyped copies of the scalar meta fields, for filtering (null where a row lacks the field): "
                 + ", ".join(f"`meta_{key}` ({kind})" for key, kind in plan.promoted.items()) + ".")
    return text + ("\n\n`meta` differs between sources, so it is stored whole as a JSON string (every Parquet "
                   "reader loads it; `json.loads` it, or `ds.cast_column(\"meta\", datasets.Json())` with "
                   "`datasets` 5 or later).")


def _stats_section(scan: ScanResult) -> str:
    stats = scan.stats
    header = ["", "min", "p10", "median", "mean", "p90", "max"]
    rows = []
    for label, values in (("prompt words", stats.prompt_words), ("response words", stats.response_words),
                          ("messages per row", stats.turns),
                          *((f"score: {name}", vals) for name, vals in sorted(stats.scores.items()))):
        summary = summarize(values)
        if summary:
            rows.append([label, *(_fmt(summary[k]) for k in ("min", "p10", "median", "mean", "p90", "max"))])
    text = "## Statistics\n\n" + _table(header, rows)
    scored = {name: len(v) for name, v in stats.scores.items()}
    if scored:
        text += "\n\nRows scored: " + ", ".join(f"{n} {c:,}/{stats.count:,}" for n, c in sorted(scored.items())) + "."
    return text


def _examples_section(scan: ScanResult, limit: int = MAX_EXAMPLE_CHARS) -> str:
    if not scan.stats.examples:
        return ""
    blocks = []
    for i, record in enumerate(scan.stats.examples[:2], 1):
        turns = []
        for message in record["messages"]:
            content = message["content"]
            if len(content) > limit:
                content = content[:limit] + f" … ({len(content) - limit:,} more characters)"
            turns.append(f"**{message['role']}**\n\n{_fence(content, 'text')}")
        blocks.append(f"<details><summary>Example {i} (<code>{record['id']}</code>)</summary>\n\n"
                      + "\n\n".join(turns) + "\n\n</details>")
    return "## Examples\n\n" + "\n\n".join(blocks)


def _licence_section(facts: CardFacts, metadata: Mapping[str, Any]) -> str:
    declared = metadata.get("license")
    lines = [f"- `license: {declared}`" + (f": {facts.license_reason}." if declared == facts.license else
                                            " (kept from the existing card).")]
    if facts.generated:
        lines.append(f"- Teacher model `{facts.teacher or 'not recorded'}`: " + (
            facts.teacher_note or "check the model's licence and terms of use; they may restrict how its "
            "outputs can be used."))
        lines.append(f"- Seed file `{facts.seeds or 'not recorded'}`: "
                     + (f"`{facts.seeds_license}`." if facts.seeds_license else "licence not recorded."))
    for source, licence in list(facts.source_licenses.items())[:8]:
        lines.append(f"- Rows from `{source}`: " + (f"`{licence}`, as its own card declares." if licence else
                     "licence not recorded (the source's card said nothing); they keep their original licence."))
    return "## Licence\n\n" + "\n".join(lines)


def _limitations_section(files: RunFiles, facts: CardFacts, funnel: Funnel | None) -> str:
    lines = []
    if facts.generated:
        lines.append(f"- Responses are machine-generated{f' by `{facts.teacher}`' if facts.teacher else ''} and "
                     "were not reviewed by people: they can be wrong, biased or unsafe.")
    if files.filter_report is not None or files.filter_config is not None:
        lines.append("- The filters are heuristics: they remove the failures they name, not every bad row.")
    decontam = files.filter_config.decontaminate if files.filter_config else []
    if decontam:
        lines.append(f"- Decontaminated only against {', '.join(_name(p) for p in decontam)}; other benchmarks "
                     "may overlap.")
    else:
        lines.append("- No decontamination against evaluation sets is recorded: check before evaluating on "
                     "public benchmarks.")
    if funnel and funnel.kept < 1000:
        lines.append(f"- Small: {funnel.kept:,} rows.")
    return "## Limitations\n\n" + "\n".join(lines)
