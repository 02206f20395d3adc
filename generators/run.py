"""A generation run: batches, append-only outputs, resume, errors, manifest, progress, budget and exit status.

Files, all beside ``--out`` (default ``generated.jsonl``); one run per folder, held by an
exclusive lock (``curate.runs.lock``) for the whole run:

- ``generated.jsonl``: accepted records, appended and fsynced once per batch.
- ``errors.jsonl``: one row per request that failed for good (after retries): reason and kind.
- ``rejected_candidates.jsonl``: one row per dropped response, instruction, instance or task, with the reason.
- ``batches.jsonl``: the ledger, one row per committed batch: requests, tokens in/out,
  candidates, rows written, wall time. Totals are sums over it, so they are rebuilt from
  the files on every resume and cannot drift.
- ``manifest.json``: resolved config, engine, model, seed file hash, prompt template ids,
  totals (from the ledger and the logs), cost and one entry per session; rewritten atomically.

Per batch the order of writes is: rejected, errors, ledger row, records, manifest. A batch
is committed when its ledger row is there and, if it wrote rows, its first row is in the
output. After Ctrl-C or ``kill -9`` the same command resumes: torn last lines are cut, rows
of an uncommitted batch are dropped from the logs and the ledger (that batch is redone from
the same seed), the novelty pool is rebuilt from the accepted rows, and a session whose
process died is marked ``interrupted``. Record ids are checked before appending.

Every error, log row and manifest is passed through ``curate.runs.redact`` before it is
written. Status: ``complete``; ``budget`` (``--max-tokens-total`` reached); ``stalled``
(``stall_batches`` batches in a row accepted nothing); ``failed`` (the teacher refused the
key or the connection, or every request of ``DEAD_BATCHES`` batches in a row failed);
``interrupted``. The advice printed for ``stalled``/``failed`` follows the kind of errors seen.
"""

from __future__ import annotations

import json
import os
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
from curate.runs.lock import check_writable, output_lock
from curate.runs.redact import redact, redact_text, register_secret
from generators.config import GenerateConfig
from generators.engines.base import Engine, TeacherUnavailable
from generators.seeds import load_seeds, seeds_hash
from generators.self_instruct import BatchOutcome, SelfInstruct

ERRORS_FILE = names.GENERATE_ERRORS
REJECTED_FILE = names.REJECTED_CANDIDATES
MANIFEST_FILE = names.MANIFEST
BATCHES_FILE = names.GENERATE_BATCHES
DEAD_BATCHES = 3  # batches in a row where every request failed: the run stops as failed
LEDGER_KEYS = ("requests", "failed_requests", "tokens_in", "tokens_out", "candidates", "rows")

ADVICE = {
    "auth": "the server refused the API key: set OPENAI_API_KEY or --api-key",
    "connection": "the server could not be reached: is it running, and is --base-url right?",
    "timeout": "requests timed out: raise --timeout or lower --concurrency",
    "rate_limit": "the server kept rate-limiting: lower --concurrency or set --rpm",
    "server": "the server kept failing (HTTP 5xx): see its log and errors.jsonl",
    "bad_request": "the server rejected the requests (HTTP 4xx): see errors.jsonl; check --teacher and --prompt-style",
    "context_length": "the prompts do not fit the teacher's context window: use a longer one "
                      "(--max-model-len for vllm, --engine-option n_ctx=8192 for llamacpp) or fewer in-context tasks",
    "incomplete": "the engine aborted the generations: see errors.jsonl",
    "engine": "the engine failed: see errors.jsonl",
}
STALLED_ADVICE = "nothing new was accepted (see rejected_candidates.jsonl); a stronger --teacher usually helps"


@dataclass
class Paths:
    out: Path
    errors: Path
    rejected: Path
    manifest: Path
    batches: Path

    @classmethod
    def beside(cls, out: str | Path) -> Paths:
        paths = names.generate_paths(out)
        return cls(paths.out, paths.errors, paths.rejected, paths.manifest, paths.out.parent / BATCHES_FILE)


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
class Session:
    """This process's share of the run: what the exit status and the advice are decided from."""

    requests: int = 0
    failed: int = 0
    rows: int = 0
    error_kinds: Counter = field(default_factory=Counter)
    dead_batches: int = 0  # batches in a row where every request failed
    dead_kinds: Counter = field(default_factory=Counter)  # the error kinds of those batches
    error: str | None = None

    def cause(self) -> str | None:
        """The advice for the most common kind of failure: of the last dead batches, else of the session
        when failures dominate it."""
        kinds = self.dead_kinds or (self.error_kinds if self.failed * 2 >= self.requests else None)
        if not kinds:
            return None
        return ADVICE.get(kinds.most_common(1)[0][0], ADVICE["engine"])


@dataclass
class Summary:
    status: str  # complete | budget | stalled | failed
    totals: Totals
    paths: Paths
    resumed_rows: int
    config: GenerateConfig
    session: Session = field(default_factory=Session)

    def failure(self) -> str | None:
        """The one-line cause of a failed run, with what to do; None when the run did not fail."""
        if self.status != "failed":
            return None
        return (f"every request of {DEAD_BATCHES} batches in a row failed: {self.session.cause() or ADVICE['engine']} "
                f"({self.totals.rows} rows in {self.paths.out}; see {self.paths.errors})")

    @property
    def exit_code(self) -> int:
        """0: complete, or stopped at the budget asked for; 1: stalled; 2: failed."""
        return {"complete": 0, "budget": 0, "stalled": 1}.get(self.status, 2)


def generate(config: GenerateConfig, seeds_path: str | Path, out: str | Path, engine: Engine,
             progress: bool = True) -> Summary:
    """Run (or resume) generation into ``out`` until ``config.num_instructions`` are accepted."""
    paths = Paths.beside(out)
    check_writable(paths.out)
    with output_lock(paths.manifest, "curate generate"):
        return _run(config, seeds_path, paths, engine, progress)


def _run(config: GenerateConfig, seeds_path: str | Path, paths: Paths, engine: Engine, progress: bool) -> Summary:
    seeds = load_seeds(seeds_path)
    seed_hash = seeds_hash(seeds_path)
    previous = _read_manifest(paths.manifest)
    existing = _read_existing(paths.out)
    _check_compatible(previous, existing, config, seed_hash, paths)
    run_id = (previous or {}).get("run_id") or _first_run_id(existing) or uuid.uuid4().hex[:12]
    algo = SelfInstruct(config, seeds, engine.describe(), _completion_mode(config, engine), run_id)
    ledger, existing = _recover(paths, previous, existing)
    algo.restore(existing, _read_log(paths.rejected))  # published pool: failed tasks rejoin
    totals = _totals_from_files(paths, ledger, existing)
    totals.instructions_accepted = algo.accepted_count
    manifest = _manifest_writer(paths, config, engine, seeds_path, seed_hash, len(seeds), algo, run_id, previous,
                                len(existing))
    session = Session()
    tally = _KindTally(engine)
    bar = _Progress(config, algo.accepted_count, totals, tally, enabled=progress)
    status = "failed"
    try:
        status = _batches(config, algo, tally, paths, totals, session, {r["id"] for r in existing}, bar, manifest)
    except TeacherUnavailable as err:
        session.error = redact_text(str(err))
        session.error_kinds[err.kind] += 1
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        bar.close()
        manifest(status, totals, session)
    return Summary(status, totals, paths, len(existing), config, session)


def _batches(config: GenerateConfig, algo: SelfInstruct, tally: _KindTally, paths: Paths, totals: Totals,
             session: Session, ids: set[str], bar: _Progress, manifest) -> str:
    """Batches until the target, the budget, a stall or a dead teacher; returns the status."""
    batch, stalled = totals.batches, 0
    with AppendLog(paths.rejected) as rejected_log, AppendLog(paths.errors) as errors_log, \
            AppendLog(paths.batches) as ledger, AppendLog(paths.out) as out_log:
        while algo.accepted_count < config.num_instructions:
            if config.max_tokens_total is not None and totals.tokens_in + totals.tokens_out >= config.max_tokens_total:
                return "budget"
            if session.dead_batches >= DEAD_BATCHES:
                return "failed"
            if stalled >= config.stall_batches:
                return "stalled"
            started = time.monotonic()
            bar.batch_started()
            outcome = algo.run_batch(tally, batch, config.num_instructions - algo.accepted_count)
            for row in outcome.errors:
                row.setdefault("kind", tally.kinds.get(row.get("request_id"), "engine"))
            rows = [r for r in outcome.records if r["id"] not in ids]
            ids.update(r["id"] for r in rows)
            entry = {"batch": batch, **{k: getattr(outcome, k) for k in LEDGER_KEYS if k != "rows"},
                     "rows": len(rows), "accepted": len(outcome.accepted),
                     "wall_time_s": round(time.monotonic() - started, 3), "at": _now()}
            rejected_log.write_many(redact(outcome.rejected))
            errors_log.write_many(redact(outcome.errors))
            ledger.write_many([entry])  # the commit point, with the first row below (see module doc)
            out_log.write_many(rows)
            _count(totals, session, outcome, entry, algo)
            stalled = 0 if outcome.accepted else stalled + 1
            batch += 1
            manifest("running", totals, session)
            bar.update(totals)
    return "complete"


class _KindTally:
    """The engine, passed through, remembering each failed request's error kind for ``errors.jsonl``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.kinds: dict[str, str] = {}
        self._pending = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @property
    def in_flight(self) -> int:
        """The engine's own count (HTTP requests awaiting an answer), else requests handed to it and not back."""
        return int(getattr(self.engine, "in_flight", self._pending))

    def generate(self, requests: list[Any]) -> list[Any]:
        self._pending = len(requests)
        try:
            results = self.engine.generate(requests)
        finally:
            self._pending = 0
        self.kinds.update((r.request.id, r.error_kind or "engine") for r in results if not r.ok)
        return results


def _count(totals: Totals, session: Session, outcome: BatchOutcome, entry: dict[str, Any], algo: SelfInstruct) -> None:
    for key in LEDGER_KEYS:
        setattr(totals, key, getattr(totals, key) + entry[key])
    totals.errors += len(outcome.errors)
    totals.rejected.update(r["reason"] for r in outcome.rejected)
    totals.instructions_accepted = algo.accepted_count
    totals.batches = entry["batch"] + 1
    totals.wall_time_s += entry["wall_time_s"]
    session.requests += outcome.requests
    session.failed += outcome.failed_requests
    session.rows += entry["rows"]
    kinds = Counter(r.get("kind") or "engine" for r in outcome.errors)
    session.error_kinds.update(kinds)
    dead = outcome.requests > 0 and outcome.failed_requests == outcome.requests
    session.dead_batches = session.dead_batches + 1 if dead else 0
    session.dead_kinds = session.dead_kinds + kinds if dead else Counter()


def _completion_mode(config: GenerateConfig, engine: Engine) -> bool:
    if config.prompt_style == "auto":
        return bool(getattr(engine, "supports_completions", True))
    return config.prompt_style == "completion"


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # written atomically, so only a foreign file can be broken: rebuild from the logs


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The complete rows of an append-only file (a torn last line is cut)."""
    if not path.exists():
        return []
    log = AppendLog(path)
    log.close()
    return log.existing()


def _read_existing(path: Path) -> list[dict[str, Any]]:
    rows = _read_log(path)
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


def _recover(paths: Paths, previous: dict[str, Any] | None, existing: list[dict[str, Any]]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The committed ledger and rows; whatever an uncommitted batch left in the files is removed."""
    ledger = _read_log(paths.batches)
    batches_with_rows = {r["meta"].get("batch", -1) for r in existing}
    if ledger and ledger[-1]["rows"] > 0 and ledger[-1]["batch"] not in batches_with_rows:
        ledger = ledger[:-1]  # killed between the ledger row and its records: redo that batch
        write_jsonl(paths.batches, ledger)
    if not ledger and (existing or previous):
        ledger = [_legacy_entry(previous, existing)]  # a run from before the ledger: its manifest's totals
        write_jsonl(paths.batches, ledger)
    committed = max((row["batch"] for row in ledger), default=-1)
    kept = [r for r in existing if r["meta"].get("batch", -1) <= committed]
    if len(kept) != len(existing):
        write_jsonl(paths.out, kept)
    for log in (paths.rejected, paths.errors):
        rows = _read_log(log)
        if any(r.get("batch", -1) > committed for r in rows):
            write_jsonl(log, [r for r in rows if r.get("batch", -1) <= committed])
    return ledger, kept


def _legacy_entry(previous: dict[str, Any] | None, existing: list[dict[str, Any]]) -> dict[str, Any]:
    old = (previous or {}).get("totals", {})
    batch = max(int((previous or {}).get("batches_done", 0)) - 1,
                max((r["meta"].get("batch", -1) for r in existing), default=-1))
    entry = {"batch": batch, **{k: int(old.get(k, 0)) for k in LEDGER_KEYS}, "rows": len(existing),
             "wall_time_s": float(old.get("wall_time_s", 0.0)), "at": _now(), "legacy": True}
    return entry


def _totals_from_files(paths: Paths, ledger: list[dict[str, Any]], existing: list[dict[str, Any]]) -> Totals:
    """Totals of earlier sessions, from the files alone: the ledger, the rows and the logs."""
    totals = Totals()
    for row in ledger:
        for key in LEDGER_KEYS:
            setattr(totals, key, getattr(totals, key) + int(row.get(key, 0)))
        totals.wall_time_s += float(row.get("wall_time_s", 0.0))
    totals.rows = len(existing)
    totals.batches = max((row["batch"] for row in ledger), default=-1) + 1
    totals.rejected = Counter(r["reason"] for r in _read_log(paths.rejected))
    totals.errors = len(_read_log(paths.errors))
    return totals


def _manifest_writer(paths: Paths, config: GenerateConfig, engine: Engine, seeds_path: str | Path, seed_hash: str,
                     num_seeds: int, algo: SelfInstruct, run_id: str, previous: dict[str, Any] | None,
                     resumed_rows: int):
    previous = previous or {}
    # the lock is ours, so a session still marked running died with its process
    sessions = [{**s, "status": "interrupted"} if s.get("status") == "running" else s
                for s in previous.get("sessions", [])]
    this = {"started_at": _now(), "pid": os.getpid(), "engine": engine.describe(), "resumed_rows": resumed_rows}

    def write(status: str, totals: Totals, session: Session) -> None:
        entry = {**this, "ended_at": _now(), "status": status, "requests": session.requests,
                 "failed_requests": session.failed, "rows": session.rows}
        if session.error or (status in ("failed", "stalled") and session.cause()):
            entry["error"] = session.error or session.cause()
        write_json(paths.manifest, redact({
            "stage": "generate",
            "curate_version": __version__,
            "run_id": run_id,
            "status": status,
            "created_at": previous.get("created_at", this["started_at"]),
            "updated_at": _now(),
            "config": config.to_dict(),
            "engine": engine.describe(),
            "teacher": engine.model,
            "prompt_style": "completion" if algo.completion_mode else "chat",
            "prompt_templates": algo.template_ids(),
            "seeds": {"path": str(seeds_path), "sha256": seed_hash, "count": num_seeds},
            "outputs": {"records": str(paths.out), "errors": str(paths.errors), "rejected": str(paths.rejected),
                        "batches": str(paths.batches)},
            "batches_done": totals.batches,
            "totals": totals.as_dict(config),
            "sessions": [*sessions, entry],
        }))

    return write


class _Progress:
    """A rich progress bar: accepted of the target, rows, rejected, errors, generated tok/s, in flight, spend, ETA.

    The statistics column is computed at each refresh, so requests in flight (the engine's
    ``in_flight`` counter, when it keeps one) move while a batch runs. Tokens/s counts only
    generated tokens of this session; the prompt's are not work the teacher produced.
    """

    def __init__(self, config: GenerateConfig, done: int, totals: Totals, engine: Engine, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        owner = self

        class Stats(ProgressColumn):
            def render(self, task) -> Text:
                return Text(owner.stats())

        self.config, self.totals, self.engine = config, totals, engine
        self._start = time.monotonic()
        self._tokens0 = totals.tokens_out
        self._progress = Progress(BarColumn(bar_width=20), MofNCompleteColumn(), Stats(), TimeElapsedColumn(),
                                  TextColumn("eta"), TimeRemainingColumn(), transient=False)
        self._task = self._progress.add_task("generate", total=config.num_instructions, completed=done)
        self._progress.start()

    def stats(self) -> str:
        totals = self.totals
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (totals.tokens_out - self._tokens0) / elapsed
        parts = [f"rows {totals.rows}", f"rej {sum(totals.rejected.values())}", f"err {totals.errors}",
                 f"{rate:,.0f} gen tok/s"]
        in_flight = getattr(self.engine, "in_flight", None)
        if in_flight is not None:
            parts.append(f"{in_flight} in flight")
        spend = cost(totals, self.config)
        if spend is not None:
            parts.append(f"${spend:,.4f} spent")
        return " · ".join(parts)

    def batch_started(self) -> None:
        if self.enabled:
            self._progress.refresh()

    def update(self, totals: Totals) -> None:
        if self.enabled:
            self.totals = totals
            self._progress.update(self._task, completed=totals.instructions_accepted)

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()
            self.enabled = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def generate_with_engine(config: GenerateConfig, seeds_path: str | Path, out: str | Path,
                         progress: bool = True) -> Summary:
    """Check the options, seeds and output folder, lock it, build the engine, run: the call behind ``curate generate``."""
    from generators.engines.factory import check_engine, make_engine

    check_engine(config.engine, config.engine_options)  # a wrong flag fails before anything loads
    load_seeds(seeds_path)  # a bad seed file fails before a model is loaded
    paths = Paths.beside(out)
    check_writable(paths.out)
    register_secret(config.engine_options.get("api_key"))
    with output_lock(paths.manifest, "curate generate"):
        engine = make_engine(config.engine, config.teacher, **config.engine_options)
        try:
            return _run(config, seeds_path, paths, engine, progress)
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
        lines.append(f"stopped: {summary.config.stall_batches} batches in a row accepted nothing: "
                     f"{summary.session.cause() or STALLED_ADVICE}")
    lines.append(f"manifest: {summary.paths.manifest}")
    return lines
