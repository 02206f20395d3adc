"""Side by side: Self-Instruct's classification and instance prompts before and after issue 17.

Same teacher (the bundled SmolLM2-135M-Instruct, llama.cpp, completion mode, the published
sampling), same seeds (the 175 of ``self_instruct_seed_tasks.jsonl``), same instructions: phase
``instructions`` runs the instruction stage once (prompt, filters, ROUGE-L novelty) and saves the
novel instructions; phase ``instances`` classifies them and generates their instances with one
side's prompts (``old``: the templates of git commit OLD_COMMIT; ``new``: the working tree);
phase ``report`` compares the sides. The two ``instances`` runs can go in parallel.

    B=bench/results/si_prompts; mkdir -p $B
    .venv/bin/python bench/bench_self_instruct_prompts.py instructions --tasks 40 --out $B/instructions.json
    .venv/bin/python bench/bench_self_instruct_prompts.py instances --side old --instructions $B/instructions.json --out $B/old.json &
    .venv/bin/python bench/bench_self_instruct_prompts.py instances --side new --instructions $B/instructions.json --out $B/new.json
    wait; .venv/bin/python bench/bench_self_instruct_prompts.py report $B/old.json $B/new.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.config import build_config  # noqa: E402
from generators.engines.base import Completion, Request, Result  # noqa: E402
from generators.novelty import NoveltyIndex  # noqa: E402
from generators.seeds import load_seeds  # noqa: E402
from generators.self_instruct import BatchOutcome, Candidate, SelfInstruct  # noqa: E402
from generators.templates import Template  # noqa: E402

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seed_tasks.jsonl"
OLD_COMMIT = "aa66984"  # the last commit with the old demonstrations
PROMPTS = {"classification": "self_instruct_classify", "instances_classification": "self_instruct_instances_clf",
           "instances_generation": "self_instruct_instances_gen"}
CODE = re.compile(r"(\bdef \w+\(|\breturn\b|```|\bSELECT\b|#include|\bfunction\s*\w*\(|console\.log|print\(|"
                  r"\bfor \w+ in\b|;\s*$|\{\s*$)", re.MULTILINE)


class LlamaEngine:
    """The bundled GGUF in process; requests run in prompt order so llama.cpp reuses the shared prefix."""

    name, supports_completions = "llamacpp-bench", True

    def __init__(self, threads: int):
        from llama_cpp import Llama

        from curate.records.model import bundled_gguf

        self.model = "SmolLM2-135M-Instruct Q4_1"
        self.llm = Llama(str(bundled_gguf()), n_ctx=4096, n_threads=threads, verbose=False)

    def generate(self, requests: list[Request]) -> list[Result]:
        results: dict[int, Result] = {}
        for k in sorted(range(len(requests)), key=lambda i: requests[i].prompt[:400]):
            r = requests[k]
            out = self.llm.create_completion(r.prompt, max_tokens=r.max_tokens, temperature=r.temperature,
                                             top_p=r.top_p, presence_penalty=r.presence_penalty,
                                             frequency_penalty=r.frequency_penalty, stop=r.stop or None,
                                             seed=r.seed)
            choice, usage = out["choices"][0], out["usage"]
            completion = Completion(choice["text"], choice["finish_reason"] or "stop", usage["completion_tokens"])
            results[k] = Result(r, [completion], tokens_in=usage["prompt_tokens"])
        return [results[k] for k in range(len(requests))]

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model}

    def close(self) -> None:
        pass


def _algo(side: str = "new") -> SelfInstruct:
    config = build_config(None, seed=42)
    algo = SelfInstruct(config, load_seeds(SEEDS), {"name": "bench", "model": "bundled"}, True, "bench")
    if side == "old":
        for key, name in PROMPTS.items():
            text = subprocess.run(["git", "show", f"{OLD_COMMIT}:generators/prompts/{name}.txt"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout
            algo.templates[key] = Template(name, text[:-1] if text.endswith("\n") else text)
    return algo


def phase_instructions(args: argparse.Namespace) -> None:
    """Batches of the instruction stage until ``--tasks`` novel instructions exist."""
    algo, engine = _algo(), LlamaEngine(args.threads)
    out, novel, batch, started = BatchOutcome(), [], 0, time.time()
    while len(novel) < args.tasks and batch < args.max_batches:
        rng = random.Random(f"{algo.config.seed}:{batch}")
        requests, contexts = algo.build_requests(rng, batch)
        results = algo._call(engine, requests, out, batch, "instructions")
        novel += algo._novelty(algo._parse(results, contexts, out, batch), out, batch)
        batch += 1
        print(f"batch {batch}: {len(novel)} novel, {time.time() - started:.0f} s", flush=True)
    data = {"instructions": [c.instruction for c in novel[: args.tasks]], "candidates": out.candidates,
            "rejected": dict(Counter(r["reason"] for r in out.rejected)), "requests": out.requests,
            "tokens_in": out.tokens_in, "tokens_out": out.tokens_out, "batches": batch,
            "wall_s": round(time.time() - started, 1)}
    Path(args.out).write_text(json.dumps(data, indent=1), encoding="utf-8")


def phase_instances(args: argparse.Namespace) -> None:
    """Classification and instances for the saved instructions with one side's prompts."""
    algo, engine = _algo(args.side), LlamaEngine(args.threads)
    saved = json.loads(Path(args.instructions).read_text(encoding="utf-8"))
    out, started, tasks = BatchOutcome(), time.time(), []
    rng = random.Random("bench")
    # one chunk: requests of one template run back to back, so llama.cpp evaluates its demonstrations once
    for k in range(0, len(saved["instructions"]), args.chunk):
        chunk = [Candidate(i, None, None, None, []) for i in saved["instructions"][k : k + args.chunk]]  # type: ignore[arg-type]
        chunk = algo._classify(engine, chunk, rng, out, 0)
        classified = {c.instruction: c.is_classification for c in chunk}
        for candidate, instances in algo._instances(engine, chunk, rng, out, 0):
            tasks.append({"instruction": candidate.instruction, "is_classification": candidate.is_classification,
                          "instances": [{"input": i, "output": o} for i, o in instances]})
        tasks_seen = {t["instruction"] for t in tasks}
        print(f"{args.side}: {k + len(chunk)} done, {len(tasks)} with instances, {time.time() - started:.0f} s",
              flush=True)
        for c in chunk:
            if c.instruction not in tasks_seen:
                tasks.append({"instruction": c.instruction, "is_classification": classified[c.instruction],
                              "instances": []})
    data = {"side": args.side, "templates": algo.template_ids(), "tasks": tasks,
            "rejected": dict(Counter(f"{r['stage']}:{r['reason']}" for r in out.rejected)),
            "requests": out.requests, "tokens_in": out.tokens_in, "tokens_out": out.tokens_out,
            "wall_s": round(time.time() - started, 1)}
    Path(args.out).write_text(json.dumps(data, indent=1), encoding="utf-8")


def phase_classify(args: argparse.Namespace) -> None:
    """Only the classification step, for one side or for a classification template file."""
    algo, engine = _algo(args.side), LlamaEngine(args.threads)
    if args.template:
        text = Path(args.template).read_text(encoding="utf-8")
        algo.templates["classification"] = Template("classify", text[:-1] if text.endswith("\n") else text)
    saved = json.loads(Path(args.instructions).read_text(encoding="utf-8"))
    chunk = [Candidate(i, None, None, None, []) for i in saved["instructions"]]  # type: ignore[arg-type]
    started = time.time()
    chunk = algo._classify(engine, chunk, random.Random("bench"), BatchOutcome(), 0)
    yes = [c.instruction for c in chunk if c.is_classification]
    print(json.dumps({"side": args.side, "template": algo.templates["classification"].id, "yes": len(yes),
                      "of": len(chunk), "wall_s": round(time.time() - started, 1), "yes_tasks": yes}, indent=1))


def nearest_neighbour_rouge(texts: list[str]) -> float:
    """Mean over texts of the ROUGE-L F-measure to the most similar other text."""
    if len(texts) < 2:
        return float("nan")
    best = []
    for k, text in enumerate(texts):
        index = NoveltyIndex(texts[:k] + texts[k + 1 :])
        best.append(index.check(text).max_score)
    return mean(best)


def side_metrics(data: dict) -> dict:
    tasks = data["tasks"]
    done = [t for t in tasks if t["instances"]]
    instances = [i for t in done for i in t["instances"]]

    def words(text: str) -> int:
        return len(text.split())

    return {
        "instructions": len(tasks),
        "classification share": mean(t["is_classification"] for t in tasks),
        "tasks with >=1 valid instance": len(done) / len(tasks),
        "instances per completed task": mean(len(t["instances"]) for t in done) if done else 0,
        "mean instance length (words, input + output)": mean(words(i["input"]) + words(i["output"])
                                                              for i in instances) if instances else 0,
        "mean output length (words)": mean(words(i["output"]) for i in instances) if instances else 0,
        "instances with an input": mean(bool(i["input"]) for i in instances) if instances else 0,
        "completed tasks with code": mean(any(CODE.search(i["input"] + "\n" + i["output"]) for i in t["instances"])
                                          for t in done) if done else 0,
        "diversity of completed instructions (mean NN ROUGE-L, lower = more diverse)":
            nearest_neighbour_rouge([t["instruction"] for t in done]),
        "diversity of instance inputs+outputs (mean NN ROUGE-L)":
            nearest_neighbour_rouge([i["input"] + " " + i["output"] for i in instances]),
        "tokens out": data["tokens_out"], "tokens in": data["tokens_in"], "wall s": data["wall_s"],
    }


def phase_report(args: argparse.Namespace) -> None:
    sides = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.files]
    if args.instructions:
        shared = json.loads(Path(args.instructions).read_text(encoding="utf-8"))
        kept = len(shared["instructions"])
        print(f"shared instruction stage: {shared['requests']} requests, {shared['candidates']} candidates, "
              f"rejected {shared['rejected']}, {kept} novel instructions used, {shared['wall_s']} s\n")
    metrics = [side_metrics(s) for s in sides]
    print("| metric | " + " | ".join(s["side"] for s in sides) + " |")
    print("|---|" + "---|" * len(sides))
    for key in metrics[0]:
        cells = [f"{m[key]:.3f}" if isinstance(m[key], float) else str(m[key]) for m in metrics]
        print(f"| {key} | " + " | ".join(cells) + " |")
    reasons = sorted(set().union(*(s["rejected"] for s in sides)))
    for reason in reasons:
        print(f"| rejected {reason} | " + " | ".join(str(s["rejected"].get(reason, 0)) for s in sides) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("instructions")
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--max-batches", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p = sub.add_parser("instances")
    p.add_argument("--side", choices=["old", "new"], required=True)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--instructions", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p = sub.add_parser("classify")
    p.add_argument("--side", choices=["old", "new"], default="new")
    p.add_argument("--template", help="a classification template file to try instead of the side's")
    p.add_argument("--instructions", required=True)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("files", nargs="+")
    p.add_argument("--instructions", help="the instructions phase's file, for the shared stage's figures")
    args = parser.parse_args()
    phases = {"instructions": phase_instructions, "instances": phase_instances, "classify": phase_classify,
              "report": phase_report}
    phases[args.phase](args)


if __name__ == "__main__":
    main()
