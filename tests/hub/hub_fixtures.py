"""Builders for a small run folder shaped like what generate, filter and compare write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.records import make_record
from curate.records.jsonl import write_json, write_jsonl

SEEDS_SHA = "5f" * 32


def kept_records(count: int = 40) -> list[dict[str, Any]]:
    """Records with heterogeneous meta (as real sources have) and partial scores."""
    records = []
    for i in range(count):
        meta: dict[str, Any] = {"source": "self-instruct", "teacher": "SmolLM2-135M-Instruct",
                                "tokens_out": 10 + i, "finish_reason": "stop", "seed_ids": [i % 7, (i + 3) % 7],
                                "instruction": f"Task {i}", "most_similar": [
                                    {"instruction": "seed", "score": round(0.15 + (i * 37 % 50) / 100, 3)}]}
        if i % 3 == 0:
            meta["instances"] = [{"input": "", "output": f"answer {i}"}]
        if i % 5 == 0:
            meta["ratio"] = 1 if i % 2 else 0.5  # int and float mixed: promoted as float64
        if i % 6 == 0:
            meta["mixed"] = "a" if i % 4 else 3  # str and int mixed: not promoted
        scores = {"judge": float(i % 10), "ifd": round(0.1 + i / 100, 3)} if i % 4 else None
        user = f"Task {i}: explain why {i} plus {i} equals {2 * i} in a sentence."
        answer = " ".join(["Because adding the same number twice doubles it."] * (i % 6 + 1))
        if i == 7:
            answer += "\n```python\nprint(7 + 7)\n```"  # backticks inside content must not break the card
        records.append(make_record([{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                                   meta, scores))
    return records


def rejected_rows(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i in range(24):
        if i < 8:
            reply, reject = "As an AI language model, I cannot do that.", {
                "stage": "filter", "reason": "refusal", "detail": "As an AI language model"}
        elif i < 14:
            reply, reject = f"ok {i}", {"stage": "filter", "reason": "too_short", "detail": {"words": 2, "min": 3}}
        else:
            target = kept[i % 3]
            reply = target["messages"][1]["content"] + f" (v{i})"
            reject = {"stage": "near_dedup", "reason": "near_duplicate", "detail": {"jaccard": 0.91},
                      "dup_of": target["id"], "cluster_id": f"c{i % 3}"}
        row = make_record([{"role": "user", "content": f"Rejected prompt {i}, please answer it."},
                           {"role": "assistant", "content": reply}], {"source": "self-instruct"},
                          {"judge": 2.0} if i % 2 else None)
        row["reject"] = reject
        rows.append(row)
    return rows


def manifest(count: int) -> dict[str, Any]:
    """Shaped like generators/run.py's manifest.json."""
    return {
        "stage": "generate", "curate_version": "0.1.0", "run_id": "r-test", "status": "complete",
        "config": {"preset": "self-instruct", "num_instructions": 50, "seed": 42, "novelty_threshold": 0.7,
                   "instructions": {"max_tokens": 1024, "temperature": 0.7, "top_p": 0.5, "stop": ["\n\n"]},
                   "instances": {"max_tokens": 350, "temperature": 0.0, "top_p": 0.0, "stop": ["Example 6"]}},
        "engine": {"name": "llama-cpp", "model": "SmolLM2-135M-Instruct", "n_ctx": 2048},
        "teacher": "SmolLM2-135M-Instruct",
        "seeds": {"path": "/opt/venv/lib/python3.11/site-packages/seeds/seed_tasks.jsonl", "sha256": SEEDS_SHA,
                  "count": 95},
        "totals": {"requests": 90, "candidates": 100, "instructions_accepted": 65, "rows": count, "errors": 2,
                   "rejected": {"rouge_novelty": 31, "too_long": 4}},
    }


FILTER_CONFIG = """\
# resolved `curate filter` settings; rerun with --config this file
preset: sft
filters: [empty_turn, refusal, too_short]
thresholds: {min_response_words: 3, max_repetition: 0.3}
exact_dedup: true
dedup: {threshold: 0.8, num_perm: 128, ngram: 5, keep: first}
decontaminate: [/home/someone/evals/user_oriented_instructions.jsonl]
decontam_ngram: 13
against: []
"""


def filter_report(folder: Path) -> dict[str, Any]:
    """Shaped like curate/filtering's filter_report.json (absolute paths, as the filter writes them)."""
    stages = [{"stage": "filter", "active": True, "in": 64, "dropped": 14, "out": 50, "seconds": 0.1},
              {"stage": "decontaminate", "active": True, "in": 50, "dropped": 0, "out": 50, "seconds": 0.1},
              {"stage": "exact_dedup", "active": True, "in": 50, "dropped": 0, "out": 50, "seconds": 0.1},
              {"stage": "near_dedup", "active": True, "in": 50, "dropped": 10, "out": 40, "seconds": 0.1}]
    return {"input": str(folder.resolve() / "generated.jsonl"), "outputs": {"curated": str(folder / "curated.jsonl")},
            "in": 64, "kept": 40, "rejected": 24, "reconciles": True,
            "rejected_by_reason": {"refusal": 8, "too_short": 6, "near_duplicate": 10},
            "rejected_by_stage": {"filter": 14, "decontaminate": 0, "exact_dedup": 0, "near_dedup": 10},
            "stages": stages, "preset": "sft"}


def write_run(folder: Path, *, with_manifests: bool = True, with_compare: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kept = kept_records()
    rejected = rejected_rows(kept)
    write_jsonl(folder / "curated.jsonl", kept)
    write_jsonl(folder / "rejected.jsonl", rejected)
    if not with_manifests:
        return folder
    write_jsonl(folder / "generated.jsonl", kept + [{k: v for k, v in r.items() if k != "reject"} for r in rejected])
    write_jsonl(folder / "errors.jsonl", [  # shaped like generators/self_instruct.py's error rows
        {"batch": 1, "stage": "instructions", "request_id": "1-instructions-0", "attempts": 4,
         "error": "timeout: request timed out after 60 s"},
        {"batch": 2, "stage": "instances", "request_id": "2-instances-1", "attempts": 4,
         "error": "HTTP 500: server error"}])
    write_json(folder / "manifest.json", manifest(len(kept) + len(rejected)))
    (folder / "filter_config.yaml").write_text(FILTER_CONFIG, encoding="utf-8")
    write_json(folder / "filter_report.json", filter_report(folder))
    if with_compare:
        from matplotlib.figure import Figure

        compare = folder / "compare" / "lima"
        compare.mkdir(parents=True)
        results = [{"arm": arm, "n": n, "seed": seed, "eval_loss": 2.0 - n / 100 - (0.1 if arm == "top" else 0)}
                   for arm in ("top", "random") for n in (10, 20, 40) for seed in (0, 1)]
        write_json(compare / "results.json", {"metric": "eval_loss", "results": results})
        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        for arm in ("top", "random"):
            ax.plot([10, 20, 40], [r["eval_loss"] for r in results if r["arm"] == arm and r["seed"] == 0],
                    marker="o", label=arm)
        ax.legend()
        fig.savefig(compare / "curve.png")
    return folder


CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
)


def write_train_run(folder: Path, max_length: int = 256) -> Path:
    """A `curate train` run folder: config.yaml, metrics.json (loss + learning rate), a saved tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([f"Task {i}: explain why {i} plus {i} equals {2 * i}." for i in range(50)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>")
    fast.chat_template = CHATML
    fast.save_pretrained(str(folder))
    losses = [{"step": s, "loss": 2.5 - s / 15, "learning_rate": 2e-4 * min(1, s / 3) * (1 - s / 31)}
              for s in range(1, 31)]
    write_json(folder / "metrics.json", {"steps": 30, "train_loss": losses, "final_eval_loss": 1.1,
                                         "eval_loss": [{"step": 15, "loss": 1.6}, {"step": 30, "loss": 1.1}]})
    (folder / "config.yaml").write_text(
        f"model: bundled\nquantization: nf4\nlora: {{r: 16}}\nsft: {{max_length: {max_length}}}\n"
        "run: {base_model: /opt/models/SmolLM2-135M-Instruct, data: /home/me/curated.jsonl}\n", encoding="utf-8")
    return folder
