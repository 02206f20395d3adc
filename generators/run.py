"""A generation run: batches, append-only outputs, resume, errors, manifest, progress and budget.

Files, all beside ``--out`` (default ``generated.jsonl``):

- ``generated.jsonl``: accepted records, appended and fsynced once per batch.
- ``errors.jsonl``: one row per request that failed for good (after retries), with the reason.
- ``rejected_candidates.jsonl``: one row per dropped response, instruction, instance or task, with the reason.
- ``manifest.json``: resolved config, engine, model, seed file hash, prompt template ids and
  totals (requests, tokens in/out, accepted, rejected by reason, errors, wall time, cost);
  rewritten atomically after every batch.

Per batch the order of writes is: rejected, errors, records, manifest. After Ctrl-C or
``kill -9`` the same command resumes: a torn last line is cut, the last committed batch
is the later of the manifest's and the newest batch in the output, log rows of a batch
that never committed are dropped (that batch is redone from the same seed), and the
novelty pool is rebuilt from the accepted rows. Record ids are checked before appending,
so a row is never written twice.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import CurateError
from curate.records import validate_record
from curate.records.jsonl import AppendLog, write_json, write_jsonl
from curate.runs import names
from generators.config import GenerateConfig
from generators.engines.base import Engine
from generators.seeds import load_seeds, seeds_hash
from generators.self_instruct import SelfInstruct

ERRORS_FILE = names.GENERATE_ERRORS
REJECTED_FILE = names.REJECTED_CANDIDATES
MANIFEST_FILE = names.MANIFEST


@dataclass
class Paths:
    out: Path
    errors: Path
    rejected: Path
    manifest: Path

    @classmethod
    def beside(cls, out: str | Path) -> Paths:
        paths = names.generate_paths(out)
        return cls(paths.out, paths.errors, paths.rejected, paths.manifest)


@dataclass
class Totals:
    requests: int = 0
    failed_requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    candidates: int = 0
    instructions_accepted: int = 0
    rows: int = 0
    errors: int = 0
    rejected: Counter = field(default_factory=Counter)
    batches: int = 0
    wall_time_s: float = 0.0

    def as_dict(self, config: GenerateConfig) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "rejected"}
        data["rejected"] = dict(sorted(self.rejected.items()))
        data["rejected_total"] = sum(self.rejected.values())
        data["wall_time_s"] = round(self.wall_time_s, 3)
        data["cost"] = cost(self, config)
        return data


def cost(totals: Totals, config: GenerateConfig) -> float | None:
    if config.price_in is None and config.price_out is None:
        return None
    return round(totals.tokens_in / 1e6 * (config.price_in or 0.0) + totals.tokens_out / 1e6 * (config.price_out or 0.0), 6)


@dataclass
class Summary:
    status: str  # complete | budget | stalled
    totals: Totals
    paths: Paths
    resumed_rows: int
    config: GenerateConfig


def generate(
    config: GenerateConfig,
    seeds_path: str | Path,
    out: str | Path,
    engine: Engine,
    progress: bool = True,
) -> Summary:
    """Run (or resume) generation into ``out`` until ``config.num_instructions`` are accepted."""
    paths = Paths.beside(out)
    seeds = load_seeds(seeds_path)
    seed_hash = seeds_hash(seeds_path)
    previous = _read_manifest(paths.manifest)
    existing = _read_existing(paths.out)
    _check_compatible(previous, existing, config, seed_hash, paths)
    run_id = (previous or {}).get("run_id") or _first_run_id(existing) or uuid.uuid4().hex[:12]
    completion_mode = _completion_mode(config, engine)
    algo = SelfInstruct(config, seeds, engine.describe(), completion_mode, run_id)
    algo.restore(existing)

    committed = max(int((previous or {}).get("batches_done", 0)) - 1, max((r["meta"].get("batch", -1) for r in existing), default=-1))
    totals = _restore_totals(previous, existing, paths, committed)
    totals.instructions_accepted = algo.accepted_count
    started = time.monotonic()
    session = {"started_at": _now(), "engine": engine.describe(), "resumed_rows": len(existing)}
    manifest = _manifest_writer(paths, config, engine, seeds_path, seed_hash, len(seeds), algo, run_id, session)

    status = "complete"
    batch = committed + 1
    stalled = 0
    ids = {r["id"] for r in existing}
    bar = _Progress(config.num_instructions, algo.accepted_count, totals, enabled=progress)
    with AppendLog(paths.rejected) as rejected_log, AppendLog(paths.errors) as errors_log, AppendLog(paths.out) as out_log:
        try:
            while algo.accepted_count < config.num_instructions:
                if config.max_tokens_total is not None and totals.tokens_in + totals.tokens_out >= config.max_tokens_total:
                    status = "budget"
                    break
                if stalled >= config.stall_batches:
                    status = "stalled"
                    break
                outcome = algo.run_batch(engine, batch, config.num_instructions - algo.accepted_count)
                rows = [r for r in outcome.records if r["id"] not in ids]
                ids.update(r["id"] for r in rows)
                rejected_log.write_many(outcome.rejected)
                errors_log.write_many(outcome.errors)
                out_log.write_many(rows)
                totals.requests += outcome.requests
                totals.failed_requests += outcome.failed_requests
                totals.tokens_in += outcome.tokens_in
                totals.tokens_out += outcome.tokens_out
                totals.candidates += outcome.candidates
                totals.rows += len(rows)
                totals.errors += len(outcome.errors)
                totals.rejected.update(r["reason"] for r in outcome.rejected)
                totals.instructions_accepted = algo.accepted_count
                totals.batches = batch + 1
                stalled = 0 if outcome.accepted else stalled + 1
                batch += 1
                manifest("running", totals, started)
                bar.update(totals)
        except KeyboardInterrupt:
            manifest("interrupted", totals, started)
            bar.close()
            raise
        finally:
            bar.close()
    manifest(status, totals, started)
    return Summary(status, totals, paths, len(existing), config)


def _completion_mode(config: GenerateConfig, engine: Engine) -> bool:
    if config.prompt_style == "auto":
        return engine.name != "openai"  # hosted chat models have no raw completion endpoint
    return config.prompt_style == "completion"


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # written atomically, so only a foreign file can be broken: rebuild from the logs


def _read_existing(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    log = AppendLog(path)  # cuts a torn last line left by kill -9
    log.close()
    rows = log.existing()
    for line_no, row in enumerate(rows, start=1):
        try:
            validate_record(row)
        except Exception as err:
            raise CurateError(f"{path}:{line_no}: cannot resume from this file: {err}") from None
    return rows


def _first_run_id(rows: list[dict[str, Any]]) -> str | None:
    return rows[0]["meta"].get("run_id") if rows else None


def _check_compatible(previous: dict[str, Any] | None, existing: list[dict[str, Any]], config: GenerateConfig,
                      seed_hash: str, paths: Paths) -> None:
    if previous is None:
        if existing:
            sources = {r["meta"].get("source") for r in existing}
            if sources != {config.preset}:
                raise CurateError(f"{paths.out} holds rows that are not from a `--preset {config.preset}` run; "
                                  "choose another --out")
        return
    recorded = previous.get("outputs", {}).get("records")
    if recorded and Path(recorded).name != paths.out.name:  # the manifest sits beside its output
        raise CurateError(f"{paths.manifest} belongs to the run writing {recorded}; one run per folder: "
                          f"put --out {paths.out.name} in another folder")
    if previous.get("config", {}).get("preset") != config.preset:
        raise CurateError(f"{paths.out} was generated with --preset {previous['config'].get('preset')}; "
                          f"resume with the same preset or choose another --out")
    if previous.get("seeds", {}).get("sha256") != seed_hash:
        raise CurateError(f"{paths.out} was generated from other seed tasks ({previous['seeds'].get('path')}); "
                          "resume with the same --seeds or choose another --out")


def _restore_totals(previous: dict[str, Any] | None, existing: list[dict[str, Any]], paths: Paths, committed: int) -> Totals:
    """Counters of earlier sessions: rows and logs are authoritative; requests/tokens come from the manifest."""
    totals = Totals()
    if previous:
        old = previous.get("totals", {})
        for key in ("requests", "failed_requests", "tokens_in", "tokens_out", "candidates", "wall_time_s"):
            setattr(totals, key, old.get(key, 0))
    totals.rows = len(existing)
    totals.batches = committed + 1
    rejected = _trim_log(paths.rejected, committed)
    errors = _trim_log(paths.errors, committed)
    totals.rejected = Counter(r["reason"] for r in rejected)
    totals.errors = len(errors)
    return totals


def _trim_log(path: Path, committed: int) -> list[dict[str, Any]]:
    """Rows of a log up to the last committed batch; later rows (a batch cut short) are removed."""
    if not path.exists():
        return []
    log = AppendLog(path)
    log.close()
    rows = log.existing()
    kept = [r for r in rows if r.get("batch", -1) <= committed]
    if len(kept) != len(rows):
        write_jsonl(path, kept)
    return kept


def _manifest_writer(paths: Paths, config: GenerateConfig, engine: Engine, seeds_path: str | Path, seed_hash: str,
                     num_seeds: int, algo: SelfInstruct, run_id: str, session: dict[str, Any]):
    previous = _read_manifest(paths.manifest) or {}
    sessions = list(previous.get("sessions", []))
    base_wall = previous.get("totals", {}).get("wall_time_s", 0.0)

    def write(status: str, totals: Totals, started: float) -> None:
        totals.wall_time_s = base_wall + (time.monotonic() - started)
        this = {**session, "ended_at": _now(), "status": status}
        write_json(paths.manifest, {
            "stage": "generate",
            "curate_version": __version__,
            "run_id": run_id,
            "status": status,
            "created_at": previous.get("created_at", session["started_at"]),
            "updated_at": _now(),
            "config": config.to_dict(),
            "engine": engine.describe(),
            "teacher": engine.model,
            "prompt_style": "completion" if algo.completion_mode else "chat",
            "prompt_templates": algo.template_ids(),
            "seeds": {"path": str(seeds_path), "sha256": seed_hash, "count": num_seeds},
            "outputs": {"records": str(paths.out), "errors": str(paths.errors), "rejected": str(paths.rejected)},
            "batches_done": totals.batches,
            "totals": totals.as_dict(config),
            "sessions": [*sessions, this],
        })

    return write


class _Progress:
    """A rich progress bar: accepted instructions of the target, rows, rejected, errors, tokens/s."""

    def __init__(self, target: int, done: int, totals: Totals, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._start = time.monotonic()
        self._tokens0 = totals.tokens_in + totals.tokens_out
        self._progress = Progress(
            TextColumn("generate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), transient=False,
        )
        self._task = self._progress.add_task("generate", total=target, completed=done, stats=self._stats(totals))
        self._progress.start()

    def _stats(self, totals: Totals) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (totals.tokens_in + totals.tokens_out - self._tokens0) / elapsed
        return (f"rows {totals.rows} · rejected {sum(totals.rejected.values())} · errors {totals.errors} · "
                f"{rate:,.0f} tok/s")

    def update(self, totals: Totals) -> None:
        if self.enabled:
            self._progress.update(self._task, completed=totals.instructions_accepted, stats=self._stats(totals))

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()
            self.enabled = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def generate_with_engine(engine_name: str, teacher: str | None, seeds_path: str | Path, out: str | Path,
                         config: GenerateConfig, engine_options: dict[str, Any], progress: bool = True) -> Summary:
    """Check the seeds, build the engine, run; the one call behind ``curate generate``."""
    from generators.engines.factory import make_engine

    load_seeds(seeds_path)  # a bad seed file fails before a model is loaded
    engine = make_engine(engine_name, teacher, **{k: v for k, v in engine_options.items() if v is not None})
    try:
        return generate(config, seeds_path, out, engine, progress)
    finally:
        engine.close()


def summary_lines(summary: Summary) -> list[str]:
    """The end-of-run report printed by the command."""
    t = summary.totals
    lines = [
        f"{t.instructions_accepted} instructions, {t.rows} rows in {summary.paths.out}"
        + (f" ({summary.resumed_rows} from before)" if summary.resumed_rows else ""),
        f"candidates {t.candidates}; rejected {sum(t.rejected.values())}"
        + (f" ({', '.join(f'{k} {v}' for k, v in t.rejected.most_common())})" if t.rejected else ""),
        f"requests {t.requests}, failed {t.failed_requests} (see {summary.paths.errors}); "
        f"tokens in {t.tokens_in:,}, out {t.tokens_out:,}; {t.wall_time_s:.1f} s",
    ]
    spend = cost(t, summary.config)
    if spend is not None:
        lines.append(f"estimated cost: ${spend:.4f}")
    if summary.status == "budget":
        lines.append(f"stopped: --max-tokens-total {summary.config.max_tokens_total:,} reached; "
                     "raise it and run the same command to continue")
    elif summary.status == "stalled":
        lines.append(f"stopped: {summary.config.stall_batches} batches in a row accepted nothing "
                     "(see rejected_candidates.jsonl); a stronger --teacher usually helps")
    lines.append(f"manifest: {summary.paths.manifest}")
    return lines
