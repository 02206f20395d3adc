"""`curate generate --dry-run`: render the first prompts, project requests, tokens and cost; send nothing.

No engine is built (an OpenAI-compatible server is not even asked for its models). The
projection is an estimate, stated with its assumptions:

- instruction requests = ceil(N / (k * ACCEPT_RATE)): ``k`` new tasks are asked for per
  request (self-instruct: ``max_list_number - num_prompt_instructions``; alpaca:
  ``tasks_per_request - num_prompt_instructions``), of which ``ACCEPT_RATE`` (an assumption:
  one half) pass parsing, the rules and novelty;
- self-instruct adds, per accepted instruction, one classification request (when
  ``classify``) and one instance request;
- prompt tokens: measured on the prompts of the first batch (instructions) and on prompts
  built from the seed instructions (classification, instances), with the teacher's tokenizer
  when it can be loaded locally (a GGUF file or the bundled model through llama.cpp; a
  Hugging Face id or folder already on disk), else ``len(text) / 4`` (OpenAI's rule of thumb
  for English). The chat template's few extra tokens are not counted;
- completion tokens: an upper bound, every request's ``max_tokens``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from generators.config import GenerateConfig, Sampling
from generators.engines.base import Request
from generators.seeds import load_seeds

ACCEPT_RATE = 0.5
CHARS_PER_TOKEN = 4


def load_counter(engine: str, teacher: str | None) -> tuple[Callable[[str], int], str]:
    """A token counter for ``teacher`` and what it is; the estimate when no tokenizer is at hand."""
    try:
        if engine in ("llamacpp",) or (teacher and teacher.endswith(".gguf")) or (teacher is None and engine != "openai"):
            from llama_cpp import Llama

            from curate.records.model import bundled_gguf

            path = Path(teacher) if teacher else bundled_gguf()
            with _c_stderr_silenced():  # llama.cpp logs from C even with verbose=False
                vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
            return (lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))), \
                f"the teacher's tokenizer ({path.name})"
        if teacher:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(teacher, local_files_only=True)
            return (lambda text: len(tokenizer.encode(text, add_special_tokens=False))), \
                f"the teacher's tokenizer ({teacher})"
    except Exception:  # no package, not on disk, not a tokenizer: fall back to the documented estimate
        pass
    return (lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)), \
        f"an estimate ({CHARS_PER_TOKEN} characters per token; no local tokenizer for the teacher)"


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the ``with`` body (C libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def sample_requests(config: GenerateConfig, seeds_path: str | Path, completion_mode: bool) -> dict[str, list[Request]]:
    """The first batch's instruction requests and, from seed instructions, classification and instance requests."""
    from generators.self_instruct import SelfInstruct

    seeds = load_seeds(seeds_path)
    algo = SelfInstruct(config, seeds, {"name": config.engine, "model": config.teacher}, completion_mode, "dry-run")
    requests, _ = algo.build_requests(random.Random(f"{config.seed}:0"), 0)
    kinds: dict[str, list[Request]] = {"instructions": requests}
    if config.preset == "alpaca":
        return kinds
    examples = [s.instruction.strip() for s in seeds[:5]]

    def requests_for(template: str, sampling: Sampling) -> list[Request]:
        return [Request(prompt=algo.templates[template].render(instruction=i), chat=not completion_mode,
                        **dataclasses.asdict(sampling)) for i in examples]

    if config.classify:
        kinds["classification"] = requests_for("classification", config.classification)
    kinds["instances"] = requests_for("instances_generation", config.instances)
    return kinds


def projected_requests(config: GenerateConfig) -> dict[str, int]:
    """Requests of each kind for the whole run, by the formula in the module docstring."""
    n = config.num_instructions
    asked = (config.tasks_per_request if config.preset == "alpaca" else config.max_list_number) \
        - config.num_prompt_instructions
    counts = {"instructions": math.ceil(n / max(asked * ACCEPT_RATE, 1e-9))}
    if config.preset != "alpaca":
        if config.classify:
            counts["classification"] = n
        counts["instances"] = n
    return counts


def dry_run_lines(config: GenerateConfig, seeds_path: str | Path) -> list[str]:
    """What the run would send and cost, as lines to print."""
    from generators.engines.factory import check_engine, engine_class

    concrete = check_engine(config.engine, config.engine_options)
    supports = engine_class(concrete).supports_completions
    completion_mode = supports if config.prompt_style == "auto" else config.prompt_style == "completion"
    count, how = load_counter(concrete, config.teacher)
    samples = sample_requests(config, seeds_path, completion_mode)
    counts = projected_requests(config)
    tokens_in = tokens_out = 0
    for kind, number in counts.items():
        mean = sum(count(r.prompt) for r in samples[kind]) / len(samples[kind])
        tokens_in += round(mean * number)
        tokens_out += number * samples[kind][0].max_tokens * samples[kind][0].n
    first = samples["instructions"][0].prompt
    lines = [f"dry run: nothing sent. --engine {concrete}, teacher {config.teacher or '(default)'}, "
             f"{'completion' if completion_mode else 'chat'} prompts; tokens counted with {how}",
             f"first prompt ({count(first):,} tokens):", *("  " + line for line in first.splitlines()[:40]),
             f"projected for {config.num_instructions:,} instructions: {sum(counts.values()):,} requests ("
             + ", ".join(f"{kind} {number:,}" for kind, number in counts.items())
             + f"; assumes {ACCEPT_RATE:.0%} of candidates accepted)",
             f"projected tokens: prompts {tokens_in:,}; completions at most {tokens_out:,} (max_tokens)"]
    if config.price_in is not None or config.price_out is not None:
        cost_in = tokens_in / 1e6 * (config.price_in or 0.0)
        cost_out = tokens_out / 1e6 * (config.price_out or 0.0)
        lines.append(f"projected cost: ${cost_in:,.4f} for prompts + at most ${cost_out:,.4f} for completions "
                     f"= at most ${cost_in + cost_out:,.4f}")
    return lines
