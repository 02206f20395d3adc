"""What a run shows and leaves behind: progress bar, metrics.json, loss curve, Ctrl-C checkpoint.

``RunMonitor`` is a transformers ``TrainerCallback``. It shows one progress line with the
loss of the step just finished (updated when that step's log arrives, so it is never one step
late), the real (non-padding) tokens per second and an ETA from this process's seconds per step, records every logged train/eval loss,
samples peak memory (CUDA allocator, or the process RSS on CPU), and turns the first Ctrl-C
into "finish this step, save a checkpoint, stop"; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


class MemorySampler:
    """Peak resident memory during training, sampled every 20 ms (ru_maxrss would include model loading)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def start(self) -> None:
        self.peak = _rss_bytes()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)


class RunMonitor(TrainerCallback):
    """Progress, metrics and Ctrl-C handling for one run; ``real_tokens`` reads the trainer's count."""

    def __init__(self, real_tokens: Callable[[], int], show_progress: bool = True):
        self.real_tokens = real_tokens
        self.show_progress = show_progress
        self.train_log: list[dict[str, Any]] = []
        self.eval_log: list[dict[str, Any]] = []
        self.interrupted = False
        self.step_seconds = 0.0
        self.wall_start = 0.0
        self.wall_seconds = 0.0
        self._step_start = 0.0
        self._step_cpu_start = 0.0
        self.step_cpu_seconds = 0.0  # CPU time of this process during the steps: a speed figure robust to load
        self._previous_handler: Any = None
        self._memory = MemorySampler()
        self._progress: Any = None
        self._task: Any = None
        self._last_loss: float | None = None
        self._plain_every = 0
        self._loss_step = 0
        self._steps_here = 0
        self._max_steps = 0
        self.tokens_at_start = 0

    # Ctrl-C -------------------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:  # second Ctrl-C: stop now
            signal.signal(signal.SIGINT, self._previous_handler or signal.default_int_handler)
            raise KeyboardInterrupt
        self.interrupted = True
        print("\ninterrupt: finishing this step, saving a checkpoint (Ctrl-C again to abort)", flush=True)

    # Trainer events -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.wall_start = time.perf_counter()
        self.tokens_at_start = self.real_tokens()
        self._max_steps = state.max_steps
        self._memory.start()
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        if self.show_progress and state.is_world_process_zero:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(stderr=True)
            if not console.is_terminal:  # a log file: plain lines, about 20 per run, instead of a bar
                self._plain_every = max(1, state.max_steps // 20)
                return
            self._progress = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), transient=False, console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                                 status="")

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()
        self._step_cpu_start = time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds += time.perf_counter() - self._step_start
        self.step_cpu_seconds += time.process_time() - self._step_cpu_start
        self._steps_here += 1
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control

    def eta_seconds(self, step: int) -> float | None:
        if not self._steps_here:
            return None
        return self.step_seconds / self._steps_here * max(0, self._max_steps - step)

    def status(self, step: int) -> str:
        parts = []
        if self._last_loss is not None:
            parts.append(f"loss {self._last_loss:.4f} (step {self._loss_step})")
        parts.append(f"{self.tokens_per_second():,.0f} tok/s")
        eta = self.eta_seconds(step)
        if eta is not None:
            parts.append(f"ETA {int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}")
        return "  ".join(parts)

    def _show(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, status=self.status(step))
        elif self._plain_every and (step % self._plain_every == 0 or step == self._max_steps):
            print(f"step {step}/{self._max_steps}  {self.status(step)}", file=sys.stderr, flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self._last_loss = float(logs["loss"])
            self._loss_step = state.global_step
            self.train_log.append({
                "step": state.global_step, "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "tokens_seen": self.real_tokens(), "epoch": state.epoch,
            })
            self._show(state.global_step)
        if "eval_loss" in logs:
            self.eval_log.append({"step": state.global_step, "loss": float(logs["eval_loss"]), "epoch": state.epoch})
            line = f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}"
            if self._progress is not None:
                self._progress.console.print(line)
            elif self._plain_every:
                print(line, file=sys.stderr, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.wall_seconds = time.perf_counter() - self.wall_start
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step, status=self.status(state.global_step))
        self.close()

    def close(self) -> None:
        """Stop sampling memory and give Ctrl-C back; safe to call twice (train() calls it in a finally)."""
        self._memory.stop()
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # Figures ------------------------------------------------------------------------------------
    def tokens_per_second(self) -> float:
        tokens = self.real_tokens() - self.tokens_at_start
        return tokens / self.step_seconds if self.step_seconds > 0 else 0.0

    def tokens_per_cpu_second(self) -> float:
        """Real tokens per second of this process's CPU time (all its threads): comparable on a loaded machine."""
        tokens = self.real_tokens() - self.tokens_at_start
        return tokens / self.step_cpu_seconds if self.step_cpu_seconds > 0 else 0.0

    def peak_memory(self) -> dict[str, Any]:
        import torch

        memory: dict[str, Any] = {"cpu_rss_peak_during_training_mb": round(self._memory.peak / 2**20, 1),
                                  "cpu_rss_peak_process_mb": round(_max_rss_bytes() / 2**20, 1)}
        if torch.cuda.is_available():
            memory["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            memory["cuda_max_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        return memory


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def plot_losses(train_log: list[dict[str, Any]], eval_log: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss per step (and eval loss where measured) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from curate.records.jsonl import atomic_writer

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    if train_log:
        axis.plot([row["step"] for row in train_log], [row["loss"] for row in train_log], label="train", lw=1.2)
    if eval_log:
        axis.plot([row["step"] for row in eval_log], [row["loss"] for row in eval_log], "o-", label="eval", lw=1.5)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (assistant tokens)")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    rates = [(row["step"], row["learning_rate"]) for row in train_log if row.get("learning_rate") is not None]
    if rates:  # the schedule explains the curve's bends (warmup, decay)
        lr_axis = axis.twinx()
        lr_axis.plot([s for s, _ in rates], [r for _, r in rates], ":", color="grey", lw=1.0, label="learning rate")
        lr_axis.set_ylabel("learning rate", color="grey")
        lr_axis.tick_params(labelsize=8, colors="grey")
    handles = [h for ax in figure.axes for h in ax.get_legend_handles_labels()[0]]
    axis.legend(handles=handles)
    figure.tight_layout()
    with atomic_writer(path, "wb") as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)
