"""`curate train`: LoRA/QLoRA SFT of a chat model on curated records, with TRL's SFTTrainer.

    curate train curated.jsonl --out runs/NAME [--model PATH_OR_ID] [--config RECIPE] [--set sft.FIELD=VALUE]

Order of work: read records -> split eval -> render with the model's chat template (loss on
assistant turns and their end-of-turn token only) -> preflight (fails before any step) ->
load the base (nf4 for QLoRA) -> train -> save adapter, tokenizer, config.yaml,
metrics.json, loss_curve.png atomically into runs/NAME/ (and ``merged/`` with ``--merge``).
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError
from curate.lm.render import Rendered, chat_template_of, end_of_turn_token, render_records, template_hash
from curate.records.jsonl import atomic_writer, write_json
from curate.records.sources import open_records
from curate.runs.commit import commit_files
from curate.runs.evidence import TrainRun
from curate.runs.lock import locks_output
from sft import config as cfg
from sft.packing import BlockDiagonalCollator, plan_packing
from sft.preflight import check_samples, check_template_saved

TESTED_TRL = "1.16.0"
RUN_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class TrainResult:
    out: Path
    steps: int
    interrupted: bool
    metrics: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    model: Any = None  # the trained PeftModel, for callers that go on using it (tests, notebooks)


def split_eval(records: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list, list]:
    """A deterministic held-out split (same seed, same records -> same split)."""
    if fraction <= 0 or len(records) < 2:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    count = min(len(records) - 1, max(1, math.ceil(len(records) * fraction)))
    held = set(order[:count])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def _label_everything(samples: list[Rendered]) -> list[Rendered]:
    """The tutorial baseline: loss on every token, prompt included."""
    return [Rendered(s.record_id, s.input_ids, list(s.input_ids)) for s in samples]


def _dataset(samples: list[Rendered]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [s.input_ids for s in samples], "labels": [s.labels for s in samples]})


def _check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise CurateError("--resume and --overwrite contradict each other: pick one")
    if overwrite and out.exists():
        if not (out / "config.yaml").exists() and not (out / "checkpoints").exists() and any(out.iterdir()):
            raise CurateError(f"{out} holds files that are not a curate run; not deleting them")
        shutil.rmtree(out)
        return
    if resume:
        if not (out / "checkpoints").is_dir():
            raise CurateError(f"{out}: nothing to resume (no checkpoints/ folder); start without --resume")
        return
    if out.exists() and any(out.iterdir()):
        raise CurateError(f"{out} already holds a run; use --resume to continue it or pick another --out")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {}
    for name in ("trl", "transformers", "peft", "bitsandbytes", "torch", "accelerate", "datasets"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _resumed_config(out: Path) -> dict[str, Any]:
    saved = yaml.safe_load((out / "config.yaml").read_text())
    saved.pop("run", None)
    return saved


def build_run_config(recipe: str | None, overrides: dict[str, Any], out: Path, resume: bool) -> dict[str, Any]:
    if resume and (out / "config.yaml").exists():
        base = _resumed_config(out)
        cfg.validate(base, str(out / "config.yaml"))
        if overrides:
            cfg.validate(overrides, "flags")
            base = cfg._merge(base, overrides)
        return base
    return cfg.build_config(recipe, overrides)


@locks_output("out", "curate train", folder=True)  # writable, one run per folder, before any loading
def train(
    data: str,
    out: str,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    merge: bool = False,
    say: Callable[[str], None] = print,
    show_progress: bool = True,
    callbacks: list[Any] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Run one SFT job end to end; see the module docstring."""
    import datasets
    import torch

    from sft import modeling

    datasets.disable_progress_bars()  # RunMonitor's bar is the one progress line
    modeling.quiet_library_warnings()

    out_dir = Path(out)
    _check_out_dir(out_dir, resume, overwrite)
    config = build_run_config(recipe, overrides or {}, out_dir, resume)
    on_cuda = torch.cuda.is_available()
    config = cfg.resolve_auto(config, on_cuda, modeling.flash_attention_available())
    sft_fields = config["sft"]
    baseline = config.get("baseline") == "tutorial"
    notices: list[str] = []
    versions = _versions()
    if versions["trl"] != TESTED_TRL:
        notices.append(f"trl {versions['trl']} is not the tested {TESTED_TRL}; every field that matters is set "
                       "explicitly in config.yaml, but check the run")

    # Data, rendering and preflight: all before the model is loaded, so mistakes fail in seconds.
    records = list(open_records(data))  # any container or format curate import reads
    if config.get("eval_file"):
        train_records, eval_records = records, list(open_records(config["eval_file"]))
    else:
        train_records, eval_records = split_eval(records, float(config["eval_split"]), int(sft_fields["seed"]))
    base = modeling.resolve_base(config["model"])
    tokenizer = modeling.load_tokenizer(base)
    chat_template_of(tokenizer)
    eot = sft_fields.get("eos_token") or end_of_turn_token(tokenizer)
    if eot not in tokenizer.get_vocab():
        raise CurateError(f"eos_token {eot!r} is not in the tokenizer's vocabulary")
    sft_fields["eos_token"] = eot
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    max_length = sft_fields.get("max_length")
    train_rendered = render_records(tokenizer, train_records, eot)
    eval_rendered = render_records(tokenizer, eval_records, eot) if eval_records else []
    if baseline:
        train_rendered, eval_rendered = _label_everything(train_rendered), _label_everything(eval_rendered)
    strict = bool(config.get("strict"))
    train_samples, train_report = check_samples(train_rendered, max_length, eot_id, eot, strict, "train", say,
                                                all_tokens_loss=baseline)
    eval_samples, eval_report = ([], None)
    if eval_rendered:
        eval_samples, eval_report = check_samples(eval_rendered, max_length, eot_id, eot, strict, "eval", say,
                                                  all_tokens_loss=baseline)

    plan = plan_packing(bool(sft_fields.get("packing")), config["attn_implementation"])
    if plan.notice:
        notices.append(plan.notice)
    sft_fields["packing"] = plan.packing
    sft_fields["padding_free"] = plan.mode == "varlen"
    if plan.packing and max_length is None:
        raise CurateError("packing needs sft.max_length (the length of a packed row)")
    sft_fields.setdefault("train_sampling_strategy", "random" if plan.packing or baseline else "group_by_length")
    if not eval_samples:
        sft_fields["eval_strategy"] = "no"
    for line in notices:
        say(line)

    # Model and trainer.
    model = modeling.load_model(base, config["quantization"], config["compute_dtype"],
                                config["attn_implementation"], on_cuda)
    from transformers import PrinterCallback
    from trl import SFTConfig

    from sft.progress import RunMonitor, plot_losses
    from sft.trainer import CurateSFTTrainer

    args = SFTConfig(output_dir=str(out_dir / "checkpoints"), remove_unused_columns=True,
                     disable_tqdm=True, **sft_fields)
    trainer = CurateSFTTrainer(
        model=model, args=args, train_dataset=_dataset(train_samples),
        eval_dataset=_dataset(eval_samples) if eval_samples else None,
        processing_class=tokenizer, peft_config=modeling.lora_config(config["lora"]),
    )
    if plan.mode == "block_diagonal":
        # TRL's packed collator flattens the batch and relies on the attention kernel to separate samples;
        # ours keeps rows apart with an explicit block-diagonal mask (see sft/packing.py).
        trainer.data_collator = BlockDiagonalCollator(
            pad_token_id=tokenizer.pad_token_id, eager=config["attn_implementation"] == "eager",
            pad_to_multiple_of=sft_fields.get("pad_to_multiple_of"),
        )
    if config["quantization"] == "nf4" and config["compute_dtype"] == "float32":
        # TRL keeps QLoRA adapters in bf16 (the paper's choice on GPUs); on a CPU without native bf16 that
        # only adds casts, so the adapters follow the compute dtype.
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    monitor = RunMonitor(lambda: trainer.real_tokens_seen, show_progress=show_progress)
    trainer.remove_callback(PrinterCallback)  # RunMonitor shows progress; raw log dicts go to metrics.json
    trainer.add_callback(monitor)
    for callback in callbacks or []:
        trainer.add_callback(callback)

    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    except ValueError as err:
        if resume and "checkpoint" in str(err):
            raise CurateError(f"{out_dir}: no checkpoint to resume from ({err})") from None
        raise
    evaluated_last = bool(monitor.eval_log) and monitor.eval_log[-1]["step"] == trainer.state.global_step
    if eval_samples and not monitor.interrupted and not evaluated_last:
        trainer.evaluate()  # the final eval loss, logged through RunMonitor.on_log
    wall = time.perf_counter() - started

    template_sha = template_hash(tokenizer)
    metrics = {
        "steps": trainer.state.global_step,
        "interrupted": monitor.interrupted,
        "train_loss": monitor.train_log,
        "eval_loss": monitor.eval_log,
        "final_eval_loss": monitor.eval_log[-1]["loss"] if monitor.eval_log else None,
        "tokens_seen": trainer.real_tokens_seen,
        "tokens_per_second": round(monitor.tokens_per_second(), 1),
        "train_step_seconds": round(monitor.step_seconds, 2),
        "wall_time_seconds": round(wall, 2),
        "peak_memory": monitor.peak_memory(),
        "model_memory_mb": round(trainer.model.get_memory_footprint() / 2**20, 1),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "packing": plan.mode,
        "preflight": {"train": train_report.as_dict(), "eval": eval_report.as_dict() if eval_report else None},
    }
    resolved = dict(config)
    resolved["run"] = {
        "data": str(data), "eval_records": len(eval_samples), "train_records": len(train_samples),
        "base_model": base, "end_of_turn_token": eot, "chat_template_sha256_16": template_sha,
        "packing_mode": plan.mode, "notices": notices, "versions": versions,
    }
    if not trainer.is_world_process_zero():
        return TrainResult(out_dir, trainer.state.global_step, monitor.interrupted, metrics, notices, trainer.model)

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".final.", dir=out_dir))
    try:
        with atomic_writer(staging / "config.yaml") as handle:
            yaml.safe_dump(resolved, handle, sort_keys=False, allow_unicode=True)
        write_json(staging / "metrics.json", metrics)
        plot_losses(monitor.train_log, monitor.eval_log, staging / "loss_curve.png",
                    TrainRun(out_dir, resolved, metrics, []).title())  # the report's title rule: model, method, data, steps
        if not monitor.interrupted:
            trainer.save_model(str(staging))
            tokenizer.save_pretrained(str(staging))
        # config, metrics, curve, adapter and tokenizer: one output set, all old or all new (curate.runs.commit)
        commit_files(staging, out_dir, "curate train", primary="config.yaml")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if monitor.interrupted:
        say(f"interrupted at step {trainer.state.global_step}: checkpoint saved under {out_dir / 'checkpoints'}; "
            f"continue with `curate train {data} --out {out_dir} --resume`")
        raise KeyboardInterrupt
    check_template_saved(out_dir, template_sha)
    if merge:
        from sft.merge import merge_run

        merged = merge_run(out_dir)
        say(f"merged bf16 model: {merged}")
    return TrainResult(out_dir, trainer.state.global_step, False, metrics, notices, trainer.model)
