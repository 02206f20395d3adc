"""The planted experiment of `curate compare` (issue 11), and `curate eval` of a GSM8K run vs its base.

    .venv/bin/python bench/bench_compare.py planted --work /tmp/planted [--pool 512 --sizes 64,128,256 --max-steps 24]
    .venv/bin/python bench/bench_compare.py data --work /tmp/planted    # only write pool.jsonl / eval.jsonl
    curate score /tmp/planted/pool.jsonl --scorer ifd --out /tmp/planted/pool_ifd.jsonl   # a real scorer, then:
    .venv/bin/python bench/bench_compare.py planted --work /tmp/planted --pool-file /tmp/planted/pool_ifd.jsonl \
        --eval-file /tmp/planted/eval.jsonl --by ifd --out-name compare_ifd

From ../shared/data/gsm8k_train_alpaca.json: a pool where half the answers are corrupted
(truncated, swapped between problems, or with wrong numbers) and a planted score that ranks
the clean ones higher, plus held-out clean GSM8K references (problems not in the pool). The
AlpacaDataCleaned copy has no ``#### N`` line, so every answer gets one from its last number
(which is how GSM8K writes the final answer), making exact match checkable.

Expected: `quality` beats `random` in held-out NLL at every size with a paired CI below
zero, and `bottom` is worst. Prints the conclusion, the paired table and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "gsm8k_train_alpaca.json"
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def with_final(answer: str) -> str:
    numbers = NUMBER.findall(answer.replace(",", ""))
    return f"{answer.strip()}\n#### {numbers[-1]}" if numbers else answer.strip()


def corrupt(answer: str, kind: int, other: str, rng: random.Random) -> str:
    if kind == 0:  # truncated before the final answer
        return answer[: max(20, len(answer) * 2 // 5)].rstrip()
    if kind == 1:  # another problem's answer
        return other
    return NUMBER.sub(lambda m: str(int(float(m.group())) + rng.randint(1, 9)), answer)  # wrong numbers


def build(work: Path, pool_size: int, eval_size: int, seed: int = 0, data: Path = DATA) -> tuple[Path, Path]:
    from curate.records import make_record

    rows = json.loads(Path(data).read_text())
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    pool_rows, eval_rows = order[:pool_size], order[pool_size:pool_size + eval_size]
    answers = [with_final(rows[i]["output"]) for i in pool_rows]
    pool = []
    for k, i in enumerate(pool_rows):
        clean = k % 2 == 0
        answer = answers[k] if clean else corrupt(answers[k], (k // 2) % 3, answers[(k + 7) % len(answers)], rng)
        score = 0.5 + 0.5 * rng.random() if clean else 0.5 * rng.random()
        pool.append(make_record([{"role": "user", "content": rows[i]["instruction"]},
                                 {"role": "assistant", "content": answer}],
                                meta={"source": "gsm8k", "planted": "clean" if clean else "corrupted"},
                                scores={"planted": round(score, 4)}))
    held = [make_record([{"role": "user", "content": rows[i]["instruction"]},
                         {"role": "assistant", "content": with_final(rows[i]["output"])}],
                        meta={"source": "gsm8k"}) for i in eval_rows]
    work.mkdir(parents=True, exist_ok=True)
    for path, records in ((work / "pool.jsonl", pool), (work / "eval.jsonl", held)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return work / "pool.jsonl", work / "eval.jsonl"


def planted(args: argparse.Namespace) -> None:
    import torch

    from sft.compare import run_compare

    # On a CPU shared by many jobs, one intra-op thread per process is faster than two (measured: 8 eval
    # examples took 104 s with 1 thread, 167 s with 2, at load average 17 on 2 cores).
    torch.set_num_threads(args.threads)
    from sft.comparison.plan import CompareConfig

    if args.pool_file:  # the same experiment on an already scored pool (e.g. `curate score --scorer ifd`)
        pool, held = Path(args.pool_file), Path(args.eval_file)
    else:
        pool, held = build(Path(args.work), args.pool, args.eval_size, data=args.data)
    overrides = {"sft": {"max_steps": args.max_steps, "max_length": args.max_length,
                         "learning_rate": args.learning_rate}}
    config = CompareConfig(pool=str(pool), out=str(Path(args.work) / args.out_name), by=args.by,
                           sizes=[int(s) for s in args.sizes.split(",")], arms=args.arms.split(","),
                           seeds=[int(s) for s in args.seeds.split(",")], eval=str(held), recipe="demo",
                           overrides=overrides, budget=args.budget)
    print(f"load before: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    results = run_compare(config, say=lambda line: print(line, flush=True))
    print(f"wall {time.perf_counter() - started:.0f} s; load after: {os.getloadavg()}")
    print(results["conclusion"])
    print((Path(args.work) / args.out_name / "report.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["planted", "data"])
    parser.add_argument("--work", required=True, help="Folder outside the repo for data and outputs.")
    parser.add_argument("--data", default=str(DATA), help="gsm8k_train_alpaca.json")
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--pool-file", help="Use this scored pool instead of building the planted one.")
    parser.add_argument("--eval-file", help="Eval references for --pool-file.")
    parser.add_argument("--out-name", default="compare", help="Grid folder under --work.")
    parser.add_argument("--eval-size", type=int, default=100)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--arms", default="quality,random,bottom")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--by", default="planted")
    parser.add_argument("--budget", default="fixed-steps")
    parser.add_argument("--max-steps", type=int, default=24)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    if args.mode == "data":
        print(build(Path(args.work), args.pool, args.eval_size, data=args.data))
    else:
        planted(args)


if __name__ == "__main__":
    main()
