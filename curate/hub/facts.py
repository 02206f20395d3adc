"""What a dataset card may claim, derived only from what the stage files and the rows prove.

- stages that ran: ``import`` (rows carry ``meta.format``), ``generate`` (a generate manifest),
  ``filter``/``dedup`` (a filter report or config), ``score`` (rows carry scores), ``export``;
- where the rows came from (``meta.source``: file, folder or dataset name) and, separately, the
  formats they had (``meta.format``);
- machine-generated only when ``curate generate`` made them (its manifest was found);
- the licence: known when every part of the data has a known and agreeing licence (the teacher's
  terms and the seed file's for generated rows; for imported rows what their own card or dataset
  info declared, as ``curate import`` recorded it in ``STEM.import.json``); ``--license`` overrides;
  ``other`` with the reason otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curate.runs.evidence import RecordStats, RunFiles

# What is known about the terms of common teacher models (matched on the model name).
# Anything else gets "check the model's terms"; this is a pointer, not legal advice.
TEACHER_TERMS = (
    ("smollm", "apache-2.0", "SmolLM2 models are released under Apache-2.0."),
    ("llama", None, "Llama models come with Meta's community licence and acceptable-use policy, "
                    "which also cover using their outputs to train other models."),
    ("gpt-", None, "OpenAI's terms of use restrict using outputs to develop competing models."),
    ("qwen", None, "Qwen models carry per-model licences (Apache-2.0 for most Qwen2.5 sizes; "
                   "the Qwen licence for others): check the model card."),
    ("mistral", None, "Mistral's open-weight models are Apache-2.0; its hosted models have their own terms."),
    ("gemma", None, "Gemma models come with Google's Gemma terms of use."),
)
BUNDLED_SEEDS_LICENSE = "apache-2.0"  # seeds/README.md: written by the curate authors, Apache-2.0


@dataclass
class CardFacts:
    stages: list[str]
    sources: dict[str, int]
    formats: dict[str, int]
    generated: bool
    teacher: str | None
    teacher_license: str | None
    teacher_note: str | None
    seeds: str | None  # the seed file's name, never its path
    seeds_license: str | None
    source_licenses: dict[str, str | None]  # imported source -> what its card or dataset info declared
    license: str
    license_reason: str


def teacher_terms(teacher: str | None) -> tuple[str | None, str | None]:
    """(SPDX licence or None, a one-line note) for a teacher model name."""
    if not teacher:
        return None, None
    for key, licence, note in TEACHER_TERMS:
        if key in teacher.lower():
            return licence, note
    return None, None


def seeds_license(files: RunFiles) -> str | None:
    """The manifest's seed licence, else Apache-2.0 when the seed hash is that of the seeds curate ships."""
    manifest = files.manifest
    if manifest is None:
        return None
    if manifest.seeds_license:
        return str(manifest.seeds_license)
    if manifest.seeds_sha256:
        from generators.seeds import default_seeds_path, seeds_hash

        try:
            if seeds_hash(default_seeds_path()) == manifest.seeds_sha256:
                return BUNDLED_SEEDS_LICENSE
        except (OSError, ValueError):
            return None
    return None


def stages_that_ran(files: RunFiles, stats: RecordStats) -> list[str]:
    stages = []
    if stats.formats:
        stages.append("import")
    if files.generated_here:
        stages.append("generate")
    report = files.filter_report
    if report is not None or files.filter_config is not None:
        stages.append("filter")
        active = report.active_stages if report else []
        if any(s in ("exact_dedup", "near_dedup") for s in active):
            stages.append("dedup")
    if stats.scores:
        stages.append("score")
    stages.append("export")
    return stages


def gather(files: RunFiles, stats: RecordStats, explicit_license: str | None = None) -> CardFacts:
    generated = files.generated_here
    teacher = files.manifest.teacher if files.manifest else None
    t_licence, t_note = teacher_terms(teacher)
    s_licence = seeds_license(files)
    seeds = Path(files.manifest.seeds_path).name if files.manifest and files.manifest.seeds_path else None
    sources = dict(stats.sources.most_common())
    formats = dict(stats.formats.most_common())
    imported = [s for s in sources if not generated or s not in ("self-instruct", "alpaca")]
    declared: dict[str, str | None] = {}
    for report in files.imports:
        declared.update(report.licenses())
    source_licenses = {s: declared.get(s) for s in imported}
    parts = {s: lic.lower() for s, lic in source_licenses.items() if lic}
    generated_part = t_licence if generated and t_licence and s_licence and t_licence == s_licence.lower() else None
    if explicit_license:
        licence, reason = explicit_license, "given with --license"
    elif (not generated or generated_part) and len(parts) == len(imported) and len(
            set(parts.values()) | ({generated_part} if generated else set())) == 1:
        licence = next(iter(set(parts.values()) | ({generated_part} if generated else set())))
        reason = _known_reason(parts, generated, teacher, seeds, licence)
    else:
        licence = "other"
        reason = _unknown_reason(generated, teacher, t_licence, s_licence, [s for s in imported if s not in parts],
                                 parts)
    return CardFacts(stages_that_ran(files, stats), sources, formats, generated, teacher, t_licence, t_note, seeds,
                     s_licence, source_licenses, licence, reason)


def _known_reason(parts: dict[str, str], generated: bool, teacher: str | None, seeds: str | None,
                  licence: str) -> str:
    said = []
    if generated:
        said.append(f"the teacher ({teacher}) and the seed file ({seeds}) are both {licence}")
    if parts:
        said.append(f"the card of {', '.join(parts)} declares {licence}")
    return "; ".join(said)


def _unknown_reason(generated: bool, teacher: str | None, t_licence: str | None, s_licence: str | None,
                    imported: list[str], declared: dict[str, str] | None = None) -> str:
    reasons = []
    if generated and not t_licence:
        reasons.append(f"the teacher's terms ({teacher or 'not recorded'}) are not a known open licence")
    if generated and not s_licence:
        reasons.append("the seed file's licence is not recorded")
    if generated and t_licence and s_licence and t_licence != s_licence.lower():
        reasons.append(f"the teacher ({t_licence}) and the seeds ({s_licence}) differ")
    if imported:
        reasons.append(f"the licence of the imported source(s) ({', '.join(imported[:5])}) is not recorded")
    if declared and len(set(declared.values())) > 1:
        reasons.append("the sources declare different licences ("
                       + ", ".join(f"{s}: {lic}" for s, lic in declared.items()) + ")")
    if not reasons:
        reasons.append("no stage file records a licence")
    return "; ".join(reasons) + " (pass --license when you know it)"
