"""Size a run to the machine before the first step: micro-batch, gradient accumulation, checkpointing.

The recipe gives the effective batch (``batch_size`` packed rows of ``max_length`` tokens per
optimizer step). Before any data is read, ``plan_batch`` estimates the memory of one micro-batch
from the model's config (weights, trainable state, activations per token, the chunked loss) and
the machine (free CUDA memory, or the memory the OS says is available), and picks:

- on a GPU, the largest micro-batch (a divisor of ``batch_size``) that fits, with gradient
  accumulation making up the rest, turning on activation checkpointing only if one row does not fit;
- on a CPU, one packed row per micro-batch: a CPU's matmuls are already saturated by a few hundred
  tokens, so a bigger micro-batch costs memory and buys no speed (bench/results/train.md);
  activation checkpointing only if that row does not fit.

A value the recipe pins (``sft.per_device_train_batch_size``, ``sft.activation_checkpointing``)
is kept, and is an error naming the value and the estimate when it cannot fit. The per-token
activation cost was measured on SmolLM2-135M (LoRA, float32, CPU): about 17 hidden-size and 5
intermediate-size values per token per layer are kept for the backward pass, plus allocator slack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.lm.loss import DEFAULT_CHUNK as LOSS_CHUNK  # tokens per LM-head chunk

GB = 2**30
CPU_BUDGET_FRACTION = 0.6   # of available memory: leave room for the OS and other processes
GPU_BUDGET_FRACTION = 0.9   # of free CUDA memory: the allocator needs some slack
CPU_PROCESS_OVERHEAD = 0.8 * GB  # Python, torch, tokenizer, datasets: measured RSS before the model loads
SLACK = 1.25                # allocator fragmentation on top of what autograd keeps


@dataclass(frozen=True)
class Machine:
    device: str          # "cpu" or "cuda"
    memory_bytes: int    # what this run may use: free CUDA memory, or available RAM
    name: str = ""


@dataclass(frozen=True)
class ModelShape:
    params: int
    hidden: int
    intermediate: int
    layers: int
    vocab: int

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        hidden = int(config.hidden_size)
        intermediate = int(getattr(config, "intermediate_size", 4 * hidden))
        layers = int(config.num_hidden_layers)
        vocab = int(config.vocab_size)
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
        attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
        per_layer = attention + 3 * hidden * intermediate + 2 * hidden
        embeddings = vocab * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
        return cls(layers * per_layer + embeddings, hidden, intermediate, layers, vocab)


@dataclass
class BatchPlan:
    micro_batch: int
    accumulation: int
    activation_checkpointing: bool
    estimate_bytes: int
    budget_bytes: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"micro_batch": self.micro_batch, "gradient_accumulation_steps": self.accumulation,
                "activation_checkpointing": self.activation_checkpointing,
                "estimate_gb": round(self.estimate_bytes / GB, 2), "budget_gb": round(self.budget_bytes / GB, 2),
                "reason": self.reason}


def _bytes_per_value(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def estimate_bytes(shape: ModelShape, machine: Machine, tokens: int, method: str, quantization: str,
                   dtype: str, checkpointing: bool, lora_rank: int = 16) -> int:
    """Peak memory of one training micro-batch of ``tokens`` tokens (an estimate, not a bound)."""
    width = _bytes_per_value(dtype)
    weights = shape.params * (0.6 if quantization == "nf4" else width)
    if method in ("full", "hft"):
        trainable = shape.params * (width + 8 + (4 if width == 2 else 0))  # grads + AdamW moments (+ fp32 master)
    else:
        per_layer = lora_rank * (4 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
        trainable = shape.layers * per_layer * 16  # fp32 weight, grad, two AdamW moments
    kept_per_layer = 17 * shape.hidden + 5 * shape.intermediate
    if checkpointing:  # each layer's input, plus one layer's full activations during its recompute
        per_token = (shape.layers * shape.hidden + kept_per_layer) * width
    else:
        per_token = shape.layers * kept_per_layer * width
    activations = tokens * per_token * SLACK
    loss = min(tokens, LOSS_CHUNK) * shape.vocab * 4 * 3  # logits, their softmax and its gradient, one chunk
    overhead = CPU_PROCESS_OVERHEAD if machine.device == "cpu" else 0
    return int(weights + trainable + activations + loss + overhead)


def _divisors_down(value: int) -> list[int]:
    return [d for d in range(value, 0, -1) if value % d == 0]


def plan_batch(machine: Machine, shape: ModelShape, *, max_length: int, batch_size: int, method: str,
               quantization: str, dtype: str, pinned_micro: int | None = None,
               pinned_checkpointing: bool | None = None, lora_rank: int = 16) -> BatchPlan:
    """Micro-batch (rows of ``max_length`` tokens), accumulation and checkpointing that fit ``machine``."""
    fraction = CPU_BUDGET_FRACTION if machine.device == "cpu" else GPU_BUDGET_FRACTION
    budget = int(machine.memory_bytes * fraction)

    def cost(rows: int, ckpt: bool) -> int:
        return estimate_bytes(shape, machine, rows * max_length, method, quantization, dtype, ckpt, lora_rank)

    checkpoint_options = [pinned_checkpointing] if pinned_checkpointing is not None else [False, True]
    if pinned_micro is not None:
        for ckpt in checkpoint_options:
            if cost(pinned_micro, ckpt) <= budget:
                return BatchPlan(pinned_micro, max(1, batch_size // pinned_micro), ckpt, cost(pinned_micro, ckpt),
                                 budget, "micro-batch pinned by the recipe")
        raise CurateError(
            f"sft.per_device_train_batch_size={pinned_micro} with max_length={max_length} needs about "
            f"{cost(pinned_micro, checkpoint_options[-1]) / GB:.1f} GB, more than the {budget / GB:.1f} GB this "
            f"{machine.device} can give the run; leave it unset (auto) or lower it")
    candidates = [1] if machine.device == "cpu" else _divisors_down(batch_size)
    for ckpt in checkpoint_options:
        for rows in candidates:
            if cost(rows, ckpt) <= budget:
                why = ("one packed row per micro-batch on CPU (a bigger one buys no speed)"
                       if machine.device == "cpu" else "largest micro-batch that fits")
                if ckpt:
                    why += "; activation checkpointing on, as one row would not fit otherwise"
                return BatchPlan(rows, max(1, batch_size // rows), ckpt, cost(rows, ckpt), budget, why)
    raise CurateError(
        f"max_length={max_length} needs about {cost(1, checkpoint_options[-1]) / GB:.1f} GB for a single row, more "
        f"than the {budget / GB:.1f} GB this {machine.device} can give the run; lower sft.max_length"
        + ("" if quantization == "nf4" or method in ("full", "hft") else " or use --method qlora"))


def return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the OS (Linux; a no-op elsewhere).

    glibc raises its mmap threshold each time a large mmapped block is freed, after which tensors of
    up to 32 MB come from the heap, which fragments and never shrinks: the resident size of a CPU
    training process then creeps up step after step. A fixed 1 MB threshold keeps activations and
    logits chunks in mmapped blocks that are unmapped when freed.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not Path("/proc/self").exists():
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: fixed, so glibc stops raising it
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD: trim the heap top past 1 MB free
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def available_ram() -> int:
    """Memory the OS can give this process now (MemAvailable, capped by a cgroup limit)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    limit = _cgroup_limit()
    return min(available, limit) if limit else available


def this_machine(on_cuda: bool, budget_gb: float | None = None) -> Machine:
    """The device this process trains on and the memory it may use (``budget_gb`` overrides the probe)."""
    if on_cuda:
        import torch

        free, _total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name()
        memory = free
    else:
        name, memory = "cpu", available_ram()
    if budget_gb is not None:
        memory = int(budget_gb * GB / (GPU_BUDGET_FRACTION if on_cuda else CPU_BUDGET_FRACTION))
    return Machine("cuda" if on_cuda else "cpu", int(memory), name)
