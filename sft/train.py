"""`curate train`: SFT of a chat model on curated records with TRL's SFTTrainer (LoRA, QLoRA, full, HFT).

    curate train curated.jsonl --out runs/NAME [--model PATH_OR_ID] [--method lora|qlora|full|hft]
                 [--config RECIPE] [--set sft.FIELD=VALUE]

Order of work, so that mistakes fail in seconds and nothing is loaded twice:
resolve the recipe for this machine -> size the run to its memory (``sft.sizing``; a pinned value
that cannot fit fails here) -> read, split, render and preflight the records (``sft.data``) ->
build the training arguments (this starts the process group under ``accelerate launch``) ->
load the base (nf4 for QLoRA) -> train (``sft.trainer``: chunked loss; ``sft.packing``:
per-sample attention) -> commit adapter or model, tokenizer, config.yaml, metrics.json and
loss_curve.png as one output set into runs/NAME/ (``sft.rundir``), and ``merged/`` with ``--merge``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError
from curate.lm.render import template_hash
from curate.records.jsonl import atomic_writer, write_json
from curate.runs.commit import commit_files
from curate.runs.evidence import TrainRun
from curate.runs.lock import guard_output
from sft import config as cfg
from sft import rundir
from sft.data import dataset, prepare, read_split, split_eval  # noqa: F401  (split_eval: old import path)
from sft.packing import DOCUMENT_ATTENTION, PackedCollator, plan_packing
from sft.preflight import check_template_saved
from sft.sizing import ModelShape, plan_batch, return_freed_memory, this_machine

TESTED_TRL = "1.16.0"
RUN_FILES = ("adapter_config.json", "adapter_model.safetensors")
LEARNING_RATES = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5, "hft": 2e-5}


@dataclass
class TrainResult:
    out: Path
    steps: int
    interrupted: bool
    metrics: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    model: Any = None  # the trained model (PeftModel for adapters), for callers that go on using it


def build_run_config(recipe: str | None, overrides: dict[str, Any], out: Path, resume: bool) -> dict[str, Any]:
    if resume and (out / "config.yaml").exists():
        base = yaml.safe_load((out / "config.yaml").read_text())
        base.pop("run", None)
        cfg.validate(base, str(out / "config.yaml"))
        if overrides:
            cfg.validate(overrides, "flags")
            base = cfg.merge(base, overrides)
        return base
    return cfg.build_config(recipe, overrides)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {}
    for name in ("trl", "transformers", "peft", "bitsandbytes", "torch", "accelerate", "datasets", "liger-kernel"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _check_launch(on_cuda: bool, config: dict[str, Any]) -> None:
    """Setups that would fail deep inside TRL/accelerate, as one line each."""
    import torch

    from sft import modeling

    if on_cuda and torch.cuda.device_count() > 1 and "WORLD_SIZE" not in os.environ:
        raise CurateError(
            f"{torch.cuda.device_count()} GPUs are visible but this is one process (TRL refuses nn.DataParallel): "
            "use `accelerate launch --config_file sft/accelerate/ddp.yaml .venv/bin/curate train ...`, or pick one "
            "GPU with CUDA_VISIBLE_DEVICES=0")
    fsdp2 = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and os.environ.get("FSDP_VERSION", "2") == "2"
    if fsdp2 and config["quantization"] == "nf4":
        raise CurateError("QLoRA under FSDP2 is not supported upstream (accelerate #3874): use "
                          "sft/accelerate/zero3.yaml (DeepSpeed ZeRO-3) or ddp.yaml, or --method lora")
    if modeling.using_sharding() and config["method"] == "hft":
        raise CurateError("method hft toggles requires_grad per round, which sharded (FSDP/ZeRO-3) parameters "
                          "do not allow: use ddp.yaml or one GPU")


def resolve(config: dict[str, Any], on_cuda: bool) -> tuple[dict[str, Any], list[str]]:
    """Machine-dependent values (device, dtype, attention, quantization, learning rate) and why."""
    from sft import modeling

    notices: list[str] = []
    flash, why_not = modeling.flash_attention_available()
    if why_not and config.get("attn_implementation") == "auto":
        notices.append(why_not)
    why = cfg.resolve_quantization(config, on_cuda)[1]
    if why:
        notices.append(why)
    config = cfg.resolve_auto(config, on_cuda, flash)
    sft = config["sft"]
    if sft.get("learning_rate") in (None, "auto"):
        sft["learning_rate"] = LEARNING_RATES[config["method"]]
    if on_cuda and importlib.util.find_spec("liger_kernel") and sft.get("use_liger_kernel") is None:
        sft["use_liger_kernel"] = True  # fused RMSNorm/RoPE/SwiGLU kernels (TRL passes it to transformers)
    if not cfg.is_adapter(config["method"]):
        config["lora"] = {}
    return config, notices


def size_run(config: dict[str, Any], base: str, on_cuda: bool) -> dict[str, Any]:
    """Micro-batch, accumulation and checkpointing for this machine, written into ``config['sft']``."""
    from transformers import AutoConfig

    sft = config["sft"]
    if config.get("baseline") == "tutorial":  # the baseline runs as tutorials run it: no sizing
        sft["activation_checkpointing"] = bool(sft.get("activation_checkpointing"))
        return {"reason": "tutorial baseline: batch as pinned by the recipe, not sized"}
    shape = ModelShape.from_config(AutoConfig.from_pretrained(base))
    machine = this_machine(on_cuda, config.get("memory_budget_gb"))
    pinned = sft.get("per_device_train_batch_size")
    ckpt = sft.get("activation_checkpointing")
    plan = plan_batch(machine, shape, max_length=int(sft.get("max_length") or 1024),
                      batch_size=int(config.get("batch_size") or 8), method=config["method"],
                      quantization=config["quantization"], dtype=config["compute_dtype"],
                      pinned_micro=None if pinned in (None, "auto") else int(pinned),
                      pinned_checkpointing=None if ckpt is None else bool(ckpt),
                      lora_rank=int((config.get("lora") or {}).get("r") or 16))
    sft["per_device_train_batch_size"] = plan.micro_batch
    if sft.get("gradient_accumulation_steps") in (None, "auto"):
        sft["gradient_accumulation_steps"] = plan.accumulation
    if sft.get("per_device_eval_batch_size") in (None, "auto"):
        sft["per_device_eval_batch_size"] = plan.micro_batch
    sft["activation_checkpointing"] = plan.activation_checkpointing
    return {**plan.as_dict(), "device": machine.device, "machine": machine.name,
            "memory_available_gb": round(machine.memory_bytes / 2**30, 1), "model_parameters": shape.params}


def _fsdp_checkpointing(sft: dict[str, Any]) -> None:
    """Under FSDP, activation checkpointing through FSDP's own option (no redundant all-gather)."""
    from sft import modeling

    fsdp = modeling.using_sharding() and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if fsdp and sft.get("activation_checkpointing"):
        os.environ["FSDP_ACTIVATION_CHECKPOINTING"] = "true"
        sft["activation_checkpointing"] = False


def training_args(config: dict[str, Any], out_dir: Path, packing_mode: str):
    """SFTConfig: built before the model, so under accelerate each process has its device and process group."""
    from trl import SFTConfig

    sft = dict(config["sft"])
    sft["packing"] = packing_mode != "off"
    sft["padding_free"] = packing_mode == "varlen"
    sft.setdefault("train_sampling_strategy", "random" if sft["packing"] or config.get("baseline") else
                   "group_by_length")
    _fsdp_checkpointing(sft)
    config["sft"].update({k: sft[k] for k in ("packing", "padding_free", "train_sampling_strategy")})
    return SFTConfig(output_dir=str(out_dir / "checkpoints"), remove_unused_columns=True, disable_tqdm=True, **sft)


def load_for_method(config: dict[str, Any], base: str, attn: str, on_cuda: bool):
    """The base model as the method trains it, and the peft config (None for full/hft)."""
    from sft import modeling
    from sft.methods import lora_config, prepare_full_model

    if cfg.is_adapter(config["method"]):
        model = modeling.load_model(base, config["quantization"], config["compute_dtype"], attn, on_cuda)
        return model, lora_config(config["lora"])
    # full / hft: float32 master weights (bf16/fp16 compute through the Trainer's autocast); in pure bf16 an
    # update smaller than 1/256 of a weight (a norm's 1.0 under lr 2e-5) would be rounded away
    model = modeling.load_model(base, "none", "float32", attn, on_cuda)
    return prepare_full_model(model), None


def build_trainer(config: dict[str, Any], args: Any, model: Any, peft_config: Any, prepared: Any, tokenizer: Any,
                  packing_mode: str, callbacks: list[Any]):
    from transformers import PrinterCallback

    from sft.trainer import CurateSFTTrainer

    trainer = CurateSFTTrainer(
        model=model, args=args, train_dataset=dataset(prepared.train),
        eval_dataset=dataset(prepared.eval) if prepared.eval else None,
        processing_class=tokenizer, peft_config=peft_config, use_model_loss=config.get("baseline") == "tutorial",
    )
    if packing_mode == "documents":
        trainer.data_collator = PackedCollator(pad_token_id=tokenizer.pad_token_id)
    if config["quantization"] == "nf4" and config["compute_dtype"] == "float32":
        # TRL keeps QLoRA adapters in bf16 (the paper's choice on GPUs); on a CPU without native bf16 that
        # only adds casts, so the adapters follow the compute dtype.
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    trainer.remove_callback(PrinterCallback)  # RunMonitor shows progress; raw log dicts go to metrics.json
    for callback in callbacks:
        trainer.add_callback(callback)
    return trainer


def run_training(trainer: Any, monitor: Any, resume: bool, out_dir: Path, has_eval: bool) -> float:
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    except ValueError as err:
        if resume and "checkpoint" in str(err):
            raise CurateError(f"{out_dir}: no checkpoint yet: rerun with --overwrite ({err})") from None
        raise
    finally:
        monitor.close()  # Ctrl-C handler restored even when the trainer stops without on_train_end
    evaluated_last = bool(monitor.eval_log) and monitor.eval_log[-1]["step"] == trainer.state.global_step
    if has_eval and not monitor.interrupted and not evaluated_last:
        trainer.evaluate()  # the final eval loss, logged through RunMonitor.on_log
    return time.perf_counter() - started


def collect_metrics(trainer: Any, monitor: Any, prepared: Any, packing_mode: str, sizing: dict[str, Any],
                    wall: float, previous: dict[str, Any] | None, resumed_at: int) -> dict[str, Any]:
    metrics = {
        "steps": trainer.state.global_step,
        "interrupted": monitor.interrupted,
        "train_loss": monitor.train_log,
        "eval_loss": monitor.eval_log,
        "final_eval_loss": monitor.eval_log[-1]["loss"] if monitor.eval_log else None,
        "tokens_seen": trainer.real_tokens_seen,
        "tokens_per_second": round(monitor.tokens_per_second(), 1),
        "train_step_seconds": round(monitor.step_seconds, 2),
        "train_step_cpu_seconds": round(monitor.step_cpu_seconds, 2),
        "tokens_per_cpu_second": round(monitor.tokens_per_cpu_second(), 1),
        "wall_time_seconds": round(wall, 2),
        "peak_memory": monitor.peak_memory(),
        "model_memory_mb": round(trainer.model.get_memory_footprint() / 2**20, 1),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "packing": packing_mode,
        "sizing": sizing,
        "preflight": {"train": prepared.train_report.as_dict(),
                      "eval": prepared.eval_report.as_dict() if prepared.eval_report else None},
    }
    return rundir.merge_history(previous, metrics, resumed_at) if resumed_at else metrics


def _tokens_before(previous: dict[str, Any] | None, step: int) -> int:
    rows = [row for row in (previous or {}).get("train_loss") or [] if row.get("step", 0) <= step]
    return int(rows[-1].get("tokens_seen", 0)) if rows else 0


def _resumed_step(out_dir: Path, resume: bool) -> int:
    if not resume:
        return 0
    steps = [int(p.name.rsplit("-", 1)[1]) for p in (out_dir / "checkpoints").glob("checkpoint-*")
             if p.name.rsplit("-", 1)[1].isdigit()]
    return max(steps, default=0)


def write_run(trainer: Any, tokenizer: Any, out_dir: Path, resolved: dict[str, Any], metrics: dict[str, Any],
              monitor: Any, extra: dict[str, Any]) -> None:
    """Config, metrics, curve, model/adapter and tokenizer committed as one output set (all old or all new)."""
    from sft.progress import plot_losses

    staging = out_dir / ".final"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    trainer.accelerator.wait_for_everyone()
    try:
        if not monitor.interrupted:
            # every rank: under FSDP / ZeRO-3 save_model gathers the weights collectively
            trainer.save_model(str(staging))
        trainer.accelerator.wait_for_everyone()
        if not main:
            return
        with atomic_writer(staging / "config.yaml") as handle:
            yaml.safe_dump(resolved, handle, sort_keys=False, allow_unicode=True)
        write_json(staging / "metrics.json", metrics)
        for name, value in extra.items():
            write_json(staging / name, value)
        plot_losses(metrics["train_loss"], metrics["eval_loss"], staging / "loss_curve.png",
                    TrainRun(out_dir, resolved, metrics, []).title())  # the report's title rule
        if not monitor.interrupted:
            tokenizer.save_pretrained(str(staging))
            rundir.finish_adapter(staging, rundir.describe_base(resolved["model"], resolved["run"]["base_model"]),
                                  resolved["method"], {**resolved["run"], "out": str(out_dir)}, metrics)
        commit_files(staging, out_dir, "curate train", primary="config.yaml")
    finally:
        if main:
            shutil.rmtree(staging, ignore_errors=True)


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
    """Run one SFT job end to end; see the module docstring. The run folder is locked for the run (main process
    only: under `accelerate launch` every rank runs this function on the same folder)."""
    arguments = (data, out, recipe, overrides, resume, merge, say, show_progress, callbacks, overwrite)
    if not rundir.main_process():
        return _train(*arguments)
    with guard_output(out, "curate train", folder=True):  # writable, one run per folder, before any loading
        return _train(*arguments)


def _train(data, out, recipe, overrides, resume, merge, say, show_progress, callbacks, overwrite) -> TrainResult:
    from sft import modeling

    modeling.quiet_library_warnings()  # before torch/peft pull in bitsandbytes
    import datasets
    import torch

    datasets.disable_progress_bars()  # RunMonitor's bar is the one progress line
    out_dir = Path(out)
    rundir.check_out_dir(out_dir, resume, overwrite)
    on_cuda = torch.cuda.is_available()
    config, notices = resolve(build_run_config(recipe, overrides or {}, out_dir, resume), on_cuda)
    _check_launch(on_cuda, config)
    versions = _versions()
    if versions["trl"] != TESTED_TRL:
        notices.append(f"trl {versions['trl']} is not the tested {TESTED_TRL}; every field that matters is set "
                       "explicitly in config.yaml, but check the run")
    base = modeling.resolve_base(config["model"])
    sizing = size_run(config, base, on_cuda)  # before any data: a pinned value that cannot fit fails now
    say(f"sizing: {describe_sizing(config, sizing)}")
    tokenizer = modeling.load_tokenizer(base)
    prepared = prepare(tokenizer, *read_split(data, config), config, say)
    notices += prepared.notices
    plan = plan_packing(bool(config["sft"].get("packing")), config["attn_implementation"])
    if plan.notice:
        notices.append(plan.notice)
    if plan.packing and not config["sft"].get("max_length"):
        raise CurateError("packing needs sft.max_length (the length of a packed row)")
    if not prepared.eval:
        config["sft"]["eval_strategy"] = "no"
    for line in notices:
        say(line)
    return _train_loaded(data, out_dir, config, base, tokenizer, prepared, plan.mode, sizing, notices, versions,
                         resume, merge, say, show_progress, callbacks or [])


def describe_sizing(config: dict[str, Any], sizing: dict[str, Any]) -> str:
    sft = config["sft"]
    if "micro_batch" not in sizing:
        return sizing["reason"]
    return (f"{config['method']} on {sizing['device']}, micro-batch {sft['per_device_train_batch_size']} x "
            f"{sft['gradient_accumulation_steps']} accumulation (batch {config.get('batch_size')} rows of "
            f"{sft.get('max_length')} tokens), activation checkpointing "
            f"{'on' if sft['activation_checkpointing'] else 'off'}: about {sizing['estimate_gb']} GB of the "
            f"{sizing['budget_gb']} GB budget ({sizing['reason']})")


def _train_loaded(data, out_dir, config, base, tokenizer, prepared, packing_mode, sizing, notices, versions,
                  resume, merge, say, show_progress, callbacks) -> TrainResult:
    """From the training arguments to the committed run folder."""
    from sft.methods import HalfFineTuning
    from sft.progress import RunMonitor

    return_freed_memory()  # after rendering; before the model and the first step (see sft.sizing)
    args = training_args(config, out_dir, packing_mode)  # starts the process group before the model loads
    if overwrite_barrier_needed():
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # rank 0 deleted the old run folder (sft.rundir.check_out_dir)
    attn = DOCUMENT_ATTENTION if packing_mode == "documents" else config["attn_implementation"]
    model, peft_config = load_for_method(config, base, attn, torch_cuda())
    hft = None
    if config["method"] == "hft":
        hft_fields = config.get("hft") or {}
        hft = HalfFineTuning(model, int(hft_fields.get("round_steps", 50)), int(hft_fields.get("seed", 42)))
    trainer = None
    monitor = RunMonitor(lambda: trainer.real_tokens_seen, show_progress=show_progress)
    trainer = build_trainer(config, args, model, peft_config, prepared, tokenizer, packing_mode,
                            [monitor, *([hft] if hft else []), *callbacks])
    previous = rundir.previous_metrics(out_dir) if resume else None
    resumed_at = _resumed_step(out_dir, resume)
    trainer.real_tokens_seen = _tokens_before(previous, resumed_at)
    wall = run_training(trainer, monitor, resume, out_dir, bool(prepared.eval))
    metrics = collect_metrics(trainer, monitor, prepared, packing_mode, sizing, wall, previous, resumed_at)
    resolved = dict(config)
    resolved["run"] = {
        "data": str(data), "eval_records": len(prepared.eval), "train_records": len(prepared.train),
        "base_model": base, "base": rundir.describe_base(config["model"], base),
        "end_of_turn_token": prepared.eot, "chat_template_sha256_16": template_hash(tokenizer),
        "packing_mode": packing_mode, "attention": attn, "sizing": sizing, "notices": notices, "versions": versions,
    }
    extra = {"hft_schedule.json": hft.record()} if hft else {}
    write_run(trainer, tokenizer, out_dir, resolved, metrics, monitor, extra)
    result = TrainResult(out_dir, trainer.state.global_step, monitor.interrupted, metrics, notices, trainer.model)
    if not trainer.is_world_process_zero():
        return result
    if monitor.interrupted:
        say(f"interrupted at step {trainer.state.global_step}: checkpoint saved under {out_dir / 'checkpoints'}; "
            f"continue with `curate train {data} --out {out_dir} --resume`")
        raise KeyboardInterrupt
    check_template_saved(out_dir, resolved["run"]["chat_template_sha256_16"])
    if merge:
        from sft.merge import merge_run

        say(f"merged bf16 model: {merge_run(out_dir)}")
    return result


def overwrite_barrier_needed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
