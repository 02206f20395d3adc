"""The Self-Instruct algorithm (yizhongw/self-instruct) and the Alpaca variant, one batch at a time.

One batch of the ``self-instruct`` preset:

1. ``request_batch_size`` prompts, each listing 8 in-context instructions (2 sampled from
   the machine-generated pool, seeds filling in while it is smaller, the rest from the
   human seeds), shuffled and numbered; the teacher continues the list.
2. Responses cut off by length are dropped whole; the rest are parsed into instructions,
   which go through the instruction filters (length, keyword blacklist, "Write a
   program", leading punctuation or non-ASCII character).
3. Novelty: ROUGE-L F-measure against every instruction in the pool (seeds + accepted +
   earlier candidates of this batch); above the threshold is rejected.
4. Classification identification (few-shot "Is it classification?"), then instances:
   output-first for classification tasks, input-first for the others; instance validity
   rules; a task whose instances share an input but disagree on the output is dropped;
   at most ``max_instances`` are kept.

The ``alpaca`` preset asks for 20 complete tasks (instruction, input, output) per request
with 3 seed tasks in context, applies the filters and novelty, and keeps one instance.

The published pipeline runs these as four scripts over files; here a batch goes through all
steps, so what is written is final. A batch is a pure function of the pool, the seeds and
``(seed, batch index)``; ``generators.run`` does the I/O, resume and accounting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from curate.records import make_record, normalize_text
from generators.config import GenerateConfig, Sampling
from generators.engines.base import Completion, Engine, Request, Result
from generators.instruction_rules import (
    conflicting_instances,
    dedupe_instances,
    instance_reject_reason,
    instruction_reject_reason,
)
from generators.novelty import NoveltyCheck, NoveltyIndex
from generators.parsing import (
    capitalize_first,
    parse_alpaca_tasks,
    parse_classification_instances,
    parse_generation_instances,
    parse_instruction_list,
    parse_is_classification,
)
from generators.row_formats import instance_key, instance_rng, render_row
from generators.seeds import SeedTask
from generators.templates import Template, load_template

TEMPLATES = {
    "self-instruct": {
        "instructions": "self_instruct_instructions",
        "classification": "self_instruct_classify",
        "instances_classification": "self_instruct_instances_clf",
        "instances_generation": "self_instruct_instances_gen",
    },
    "alpaca": {"instructions": "alpaca_instructions"},
}


def task_id(instruction: str) -> str:
    """A machine task's id: hash of its normalized instruction."""
    return "task-" + hashlib.sha256(normalize_text(instruction).lower().encode()).hexdigest()[:16]


@dataclass
class PoolTask:
    """An instruction that can appear in context: a human seed or an accepted machine task."""

    id: str
    instruction: str
    input: str = ""
    output: str = ""


@dataclass
class Candidate:
    instruction: str
    request: Request
    result: Result
    completion: Completion
    context_ids: list[str]
    input: str = ""
    output: str = ""
    check: NoveltyCheck | None = None
    is_classification: bool = False


@dataclass
class BatchOutcome:
    """What one batch produced: output records, rejected candidates, failed requests, counters."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[PoolTask] = field(default_factory=list)
    requests: int = 0
    failed_requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    candidates: int = 0


class SelfInstruct:
    """The algorithm's state: config, seeds, the novelty pool and the machine-task pool."""

    def __init__(
        self,
        config: GenerateConfig,
        seeds: list[SeedTask],
        engine_info: dict[str, Any],
        completion_mode: bool,
        run_id: str,
    ):
        self.config = config
        self.seeds = [PoolTask(s.id, s.instruction, *_first_instance(s)) for s in seeds]
        if len(self.seeds) < config.num_prompt_instructions - config.num_machine_instructions:
            from curate.errors import CurateError

            raise CurateError(
                f"--seeds: {len(self.seeds)} seed tasks, but each prompt needs "
                f"{config.num_prompt_instructions - config.num_machine_instructions} (num_prompt_instructions)"
            )
        self.engine_info = engine_info
        self.completion_mode = completion_mode
        self.run_id = run_id
        self.templates: dict[str, Template] = {k: load_template(v) for k, v in TEMPLATES[config.preset].items()}
        self.pool = NoveltyIndex([s.instruction for s in self.seeds])
        self.machine: list[PoolTask] = []  # machine instructions that can appear in context
        self.completed = 0  # machine tasks written with at least one instance
        self.instance_keys: set[str] = set()  # global dedup of (instruction, input, output)
        self.seed_tasks = seeds

    def restore(self, records: list[dict[str, Any]], rejected: list[dict[str, Any]] = ()) -> None:
        """Rebuild the pools, the completed count and the dedup keys from committed rows (resume).

        With published pool membership, the instructions that passed the novelty check but
        failed later (rejected at the ``task`` stage) rejoin the pool too, in batch order.
        """
        seen: set[str] = set()
        joined: list[tuple[int, int, str, str | None]] = []
        for record in records:
            meta = record.get("meta", {})
            if meta.get("instance_key"):
                self.instance_keys.add(meta["instance_key"])
            instruction = meta.get("instruction")
            if meta.get("seed_task") or not instruction or instruction in seen:
                continue
            seen.add(instruction)
            self.completed += 1
            joined.append((meta.get("batch", 0), 0, instruction, meta.get("task_id")))
        if self.config.pool_membership == "published":
            for row in rejected:
                if row.get("stage") == "task" and row.get("instruction") and row["instruction"] not in seen:
                    seen.add(row["instruction"])
                    joined.append((row.get("batch", 0), 1, row["instruction"], None))
        for _, _, instruction, tid in sorted(joined, key=lambda j: (j[0], j[1])):
            self.add_to_pool(PoolTask(tid or task_id(instruction), instruction))

    def add_to_pool(self, task: PoolTask) -> None:
        self.pool.add(task.instruction)
        self.machine.append(task)

    @property
    def accepted_count(self) -> int:
        """Machine tasks written so far (the run stops at ``num_instructions`` of them)."""
        return self.completed

    def template_ids(self) -> dict[str, str]:
        return {k: t.id for k, t in self.templates.items()}

    # -- step 1: the instruction-generation prompts ---------------------------------------

    def build_requests(self, rng: random.Random, batch: int) -> tuple[list[Request], list[list[str]]]:
        cfg = self.config
        requests, contexts = [], []
        for i in range(cfg.request_batch_size):
            machine = rng.sample(self.machine, min(cfg.num_machine_instructions, len(self.machine)))
            human = rng.sample(self.seeds, cfg.num_prompt_instructions - len(machine))
            context = machine + human
            rng.shuffle(context)
            prompt = self.render_instruction_prompt(context)
            requests.append(self._request(prompt, cfg.instructions, rng, f"b{batch}-instructions-{i}"))
            contexts.append([t.id for t in context])
        return requests, contexts

    def render_instruction_prompt(self, context: list[PoolTask]) -> str:
        template = self.templates["instructions"]
        if self.config.preset == "alpaca":
            blocks = []
            for k, task in enumerate(context, start=1):
                instruction = " ".join(task.instruction.split()).rstrip(":")
                blocks.append(
                    f"###\n{k}. Instruction: {instruction}\n{k}. Input:\n{task.input or '<noinput>'}\n{k}. Output:\n{task.output}"
                )
            return template.render(num_tasks=self.config.tasks_per_request, tasks="\n".join(blocks), next=len(context) + 1)
        lines = [f"{k}. {' '.join(t.instruction.split()).rstrip(':')}" for k, t in enumerate(context, start=1)]
        return template.render(tasks="\n".join(lines), next=len(context) + 1)

    def _request(self, prompt: str, sampling: Sampling, rng: random.Random, request_id: str, **override: Any) -> Request:
        stop = list(sampling.stop)
        if not self.completion_mode and "\n\n" in stop:
            stop.remove("\n\n")  # chat replies put blank lines between items
        values = {**dataclasses.asdict(sampling), "stop": stop, **override}
        return Request(prompt=prompt, seed=rng.randrange(2**31), chat=not self.completion_mode, id=request_id, **values)

    # -- one batch ------------------------------------------------------------------------

    def run_batch(self, engine: Engine, batch: int, remaining: int) -> BatchOutcome:
        """Generate, filter and complete up to ``remaining`` new tasks."""
        rng = random.Random(f"{self.config.seed}:{batch}")
        seeds_too = batch == 0 and self.config.row_format == "self-instruct"
        out = self.seed_rows(batch) if seeds_too else BatchOutcome()
        requests, contexts = self.build_requests(rng, batch)
        results = self._call(engine, requests, out, batch, "instructions")
        candidates = self._parse(results, contexts, out, batch)
        novel = self._novelty(candidates, out, batch)
        if self.config.preset == "alpaca":
            accepted = self._accept_alpaca(novel, remaining, out, batch)
        else:
            accepted = self._complete_self_instruct(engine, novel, remaining, rng, out, batch)
        for candidate, instances in accepted:
            self._emit(candidate, instances, out, batch)
        return out

    def _call(self, engine: Engine, requests: list[Request], out: BatchOutcome, batch: int, stage: str,
              instructions: list[str] | None = None) -> list[Result]:
        if not requests:
            return []
        results = engine.generate(requests)
        for k, result in enumerate(results):
            out.requests += 1
            out.tokens_in += result.tokens_in
            out.tokens_out += result.tokens_out
            if not result.ok:
                out.failed_requests += 1
                row = {"batch": batch, "stage": stage, "request_id": result.request.id, "error": result.error,
                       "attempts": result.attempts, "created_at": _now(), "run_id": self.run_id}
                if instructions is not None:
                    row["instruction"] = instructions[k]
                out.errors.append(row)
        return results

    def _reject(self, out: BatchOutcome, batch: int, stage: str, reason: str, instruction: str = "", **detail: Any) -> None:
        out.rejected.append({"batch": batch, "stage": stage, "reason": reason, "instruction": instruction, **detail})

    def _parse(self, results: list[Result], contexts: list[list[str]], out: BatchOutcome, batch: int) -> list[Candidate]:
        cfg = self.config
        first = cfg.num_prompt_instructions + 1
        candidates = []
        for result, context in zip(results, contexts, strict=True):
            for completion in result.completions:
                truncated = completion.finish_reason == "length"
                if cfg.preset == "alpaca":
                    tasks = parse_alpaca_tasks(completion.text, first, truncated, self.completion_mode)
                    items = [(t.instruction, t.input, t.output) for t in tasks]
                else:
                    if truncated:  # the published rule: a response cut off by length is dropped whole
                        self._reject(out, batch, "response", "truncated_response", request_id=result.request.id,
                                     text=completion.text)
                        continue
                    items = [(i, "", "") for i in
                             parse_instruction_list(completion.text, first, cfg.max_list_number, self.completion_mode)]
                if not items:
                    self._reject(out, batch, "response", "no_instructions_parsed", request_id=result.request.id,
                                 text=completion.text)
                for instruction, task_input, task_output in items:
                    instruction = capitalize_first(instruction)
                    out.candidates += 1
                    reason = instruction_reject_reason(instruction, cfg.min_words, cfg.max_words, cfg.blacklist)
                    if reason:
                        self._reject(out, batch, "instruction", reason, instruction)
                        continue
                    candidates.append(Candidate(instruction, result.request, result, completion, context,
                                                task_input, task_output))
        return candidates

    def _novelty(self, candidates: list[Candidate], out: BatchOutcome, batch: int) -> list[Candidate]:
        """Score each candidate against the pool and the earlier novel candidates of this batch.

        Published membership: a novel instruction joins the novelty and in-context pools at once,
        whatever happens to it later. ``completed``: it joins when its task is written.
        """
        threshold = self.config.novelty_threshold
        published = self.config.pool_membership == "published"
        local = NoveltyIndex()
        novel = []
        for candidate in candidates:
            check = _combine(self.pool.check(candidate.instruction), local.check(candidate.instruction), self.pool, local)
            if not check.is_novel(threshold):
                best = check.most_similar[0]
                self._reject(out, batch, "instruction", "too_similar", candidate.instruction,
                             detail={"rouge_l": best.score, "most_similar": best.text})
                continue
            candidate.check = check
            if published:
                self.add_to_pool(PoolTask(task_id(candidate.instruction), candidate.instruction))
            else:
                local.add(candidate.instruction)
            novel.append(candidate)
        return novel

    def _accept_alpaca(self, novel: list[Candidate], remaining: int, out: BatchOutcome,
                       batch: int) -> list[tuple[Candidate, list[tuple[str, str]]]]:
        accepted = []
        for candidate in novel:
            if len(accepted) >= remaining:
                self._reject(out, batch, "task", "over_target", candidate.instruction)
            elif not candidate.output:
                self._reject(out, batch, "task", "empty_output", candidate.instruction, input=candidate.input)
            else:
                accepted.append((candidate, [(candidate.input, candidate.output)]))
        return accepted

    def _complete_self_instruct(self, engine: Engine, novel: list[Candidate], remaining: int, rng: random.Random,
                                out: BatchOutcome, batch: int) -> list[tuple[Candidate, list[tuple[str, str]]]]:
        """Classify and generate instances, a chunk at a time, until ``remaining`` tasks are complete."""
        accepted: list[tuple[Candidate, list[tuple[str, str]]]] = []
        queue = list(novel)
        while queue and len(accepted) < remaining:
            chunk, queue = queue[: remaining - len(accepted)], queue[remaining - len(accepted):]
            chunk = self._classify(engine, chunk, rng, out, batch)
            accepted += self._instances(engine, chunk, rng, out, batch)
        for candidate in queue:
            self._reject(out, batch, "task", "over_target", candidate.instruction)
        return accepted

    def _classify(self, engine: Engine, chunk: list[Candidate], rng: random.Random, out: BatchOutcome,
                  batch: int) -> list[Candidate]:
        if not self.config.classify:
            return chunk
        template = self.templates["classification"]
        requests = [self._request(template.render(instruction=c.instruction.strip()), self.config.classification, rng,
                                  f"b{batch}-classify-{k}") for k, c in enumerate(chunk)]
        results = self._call(engine, requests, out, batch, "classification", [c.instruction for c in chunk])
        for candidate, result in zip(chunk, results, strict=True):
            # as published: a failed request (logged in errors.jsonl) counts as "not classification"
            candidate.is_classification = result.ok and parse_is_classification(result.completions[0].text)
        return chunk

    def _instances(self, engine: Engine, chunk: list[Candidate], rng: random.Random, out: BatchOutcome,
                   batch: int) -> list[tuple[Candidate, list[tuple[str, str]]]]:
        cfg = self.config
        requests = []
        for k, c in enumerate(chunk):
            kind = "instances_classification" if c.is_classification else "instances_generation"
            prompt = self.templates[kind].render(instruction=c.instruction.strip())
            max_tokens = cfg.instances_classification_max_tokens if c.is_classification else cfg.instances.max_tokens
            stop = [f"Example {cfg.max_instances + 1}" if s.startswith("Example ") else s for s in cfg.instances.stop]
            requests.append(self._request(prompt, cfg.instances, rng, f"b{batch}-instances-{k}",
                                          max_tokens=max_tokens, stop=stop))
        results = self._call(engine, requests, out, batch, "instances", [c.instruction for c in chunk])
        accepted = []
        for candidate, result in zip(chunk, results, strict=True):
            if not result.ok:
                self._reject(out, batch, "task", "request_failed", candidate.instruction, detail=result.error)
                continue
            completion = result.completions[0]
            truncated = completion.finish_reason == "length"
            parse = parse_classification_instances if candidate.is_classification else parse_generation_instances
            instances = []
            for inst_input, inst_output in parse(completion.text, truncated, not self.completion_mode):
                reason = instance_reject_reason(inst_input, inst_output) if cfg.instance_rules else None
                if reason:
                    self._reject(out, batch, "instance", reason, candidate.instruction, input=inst_input, output=inst_output)
                else:
                    instances.append((inst_input, inst_output))
            if conflicting_instances(instances):
                self._reject(out, batch, "task", "conflicting_instances", candidate.instruction,
                             detail=[{"input": i, "output": o} for i, o in instances])
                continue
            instances = dedupe_instances(instances)
            if len(instances) > cfg.max_instances:
                instances = rng.sample(instances, cfg.max_instances)
            if not instances:
                self._reject(out, batch, "task", "no_valid_instances", candidate.instruction, text=completion.text)
                continue
            candidate.result, candidate.completion = result, completion
            accepted.append((candidate, instances))
        return accepted

    # -- output ---------------------------------------------------------------------------

    def _emit(self, candidate: Candidate, instances: list[tuple[str, str]], out: BatchOutcome, batch: int) -> None:
        """Write a completed task's instances as rows (``row_format``) and count the task."""
        tid = task_id(candidate.instruction)
        base = self._task_meta(candidate, tid, batch)
        for k, (inst_input, inst_output) in enumerate(instances):
            meta = {**base, "input": inst_input, "instance_index": k, "num_instances": len(instances)}
            self._write_row(out, candidate.instruction, inst_input, inst_output, tid, k, meta)
        task = PoolTask(tid, candidate.instruction, *instances[0])
        if self.config.pool_membership != "published":
            self.add_to_pool(task)  # published: it joined at the novelty check
        self.completed += 1
        out.accepted.append(task)

    def _task_meta(self, candidate: Candidate, tid: str, batch: int) -> dict[str, Any]:
        cfg = self.config
        check = candidate.check
        assert check is not None
        seed_ids = {s.id for s in self.seeds}
        kind = "instructions"
        if cfg.preset == "self-instruct":
            kind = "instances_classification" if candidate.is_classification else "instances_generation"
        meta = {
            "source": cfg.preset,
            "teacher": self.engine_info.get("model"),
            "engine": self.engine_info.get("name"),
            "instruction": candidate.instruction,
            "task_id": tid,
            "is_classification": candidate.is_classification,
            "seed_ids": [i for i in candidate.context_ids if i in seed_ids],
            "context_task_ids": [i for i in candidate.context_ids if i not in seed_ids],
            "prompt_template": self.templates[kind].id,
            "instruction_template": self.templates["instructions"].id,
            "sampling": {"instructions": candidate.request.sampling(), "instances": candidate.result.request.sampling()},
            "prompt_style": "completion" if self.completion_mode else "chat",
            "finish_reason": candidate.completion.finish_reason,
            "tokens_in": candidate.result.tokens_in,
            "tokens_out": candidate.completion.tokens_out,
            "most_similar": [{"instruction": s.text, "score": s.score} for s in check.most_similar],
            "avg_similarity_score": check.avg_score,
            "created_at": _now(),
            "run_id": self.run_id,
            "batch": batch,
        }
        if cfg.classify:
            meta["classification_template"] = self.templates["classification"].id
        return meta

    def _write_row(self, out: BatchOutcome, instruction: str, inst_input: str, inst_output: str, tid: str, k: int,
                   meta: dict[str, Any]) -> None:
        """One row in the configured format, unless the same (instruction, input, output) was written."""
        key = instance_key(instruction, inst_input, inst_output)
        if key in self.instance_keys:
            return
        self.instance_keys.add(key)
        row = render_row(instruction, inst_input, inst_output, self.config.row_format,
                         instance_rng(self.config.seed, tid, k))
        meta = {**meta, "row_format": self.config.row_format, "instance_key": key}
        if row.template is not None:
            meta.update(row_template=row.template, prefix_stripped=row.prefix_stripped,
                        blank_lines_collapsed=row.blank_lines_collapsed)
        messages = [{"role": "user", "content": row.user}, {"role": "assistant", "content": row.assistant}]
        out.records.append(make_record(messages, meta))

    def seed_rows(self, batch: int) -> BatchOutcome:
        """``--row-format self-instruct`` writes the seed tasks' instances too (published), once."""
        out = BatchOutcome()
        for seed in self.seed_tasks:
            for k, instance in enumerate(seed.instances):
                meta = {"source": self.config.preset, "seed_task": True, "instruction": seed.instruction,
                        "input": instance["input"], "task_id": seed.id, "is_classification": seed.is_classification,
                        "instance_index": k, "num_instances": len(seed.instances), "created_at": _now(),
                        "run_id": self.run_id, "batch": batch}
                self._write_row(out, seed.instruction, instance["input"], instance["output"], seed.id, k, meta)
        return out


def _first_instance(seed: SeedTask) -> tuple[str, str]:
    if seed.instances:
        return seed.instances[0]["input"], seed.instances[0]["output"]
    return "", ""


def _combine(pool_check: NoveltyCheck, local_check: NoveltyCheck, pool: NoveltyIndex,
             local: NoveltyIndex) -> NoveltyCheck:
    """One check over pool + this batch's novel candidates (the published pool at that moment)."""
    if not len(local):
        return pool_check
    import numpy as np

    from generators.novelty import Similar

    scores = np.concatenate([pool_check.scores, local_check.scores])
    texts = pool.texts + local.texts
    top = np.argsort(-scores, kind="stable")[:10]
    similar = [Similar(int(i), texts[i], float(scores[i])) for i in top]
    return NoveltyCheck(float(scores.max()), similar, float(np.mean(scores)), scores)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
