"""`curate chat runs/NAME`: the trained model answers prompts, so you can see what it learned.

The base model is loaded as in training (nf4 for a QLoRA run), the adapter on top, and the
tokenizer saved with the run renders prompts: the same chat template as training (its hash
is checked against config.yaml), stopping at the same end-of-turn token. A full or HFT run
holds the whole model and is loaded from the run folder itself.

    curate chat runs/NAME                       # type prompts; an empty line or Ctrl-D ends
    curate chat runs/NAME --prompts prompts.txt # one prompt per line (or a records/JSONL file)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curate.errors import CurateError, InputError


@dataclass
class LoadedRun:
    model: Any
    tokenizer: Any
    stop_ids: list[int]


def load_run(run_dir: str | Path, base_only: bool = False) -> LoadedRun:
    from sft import modeling

    modeling.quiet_library_warnings()  # before peft pulls in bitsandbytes
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from curate.lm.render import template_hash
    from curate.runs.commit import journal_members, read_set
    from sft.merge import run_base

    run_dir = Path(run_dir)
    # the run's files as one set: a commit killed half way is finished, a mix of two runs refused
    read_set(journal_members(run_dir / "config.yaml"))
    adapter = (run_dir / "adapter_config.json").exists()
    full = (run_dir / "config.json").exists() and any(run_dir.glob("*.safetensors"))
    if not adapter and not full:
        raise CurateError(f"{run_dir}: no trained adapter or model here (adapter_config.json / model.safetensors "
                          "missing; interrupted run?)")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    run = config.get("run") or {}
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if template_hash(tokenizer) != run.get("chat_template_sha256_16"):
        raise CurateError(f"{run_dir}: the saved chat template is not the one the run was trained with")
    on_cuda = torch.cuda.is_available()
    attn = "sdpa" if "flash" in config.get("attn_implementation", "sdpa") and not on_cuda else \
        config.get("attn_implementation", "sdpa")
    if full and not adapter and not base_only:  # method full / hft: the run folder is the model
        model = modeling.load_model(str(run_dir), "none", config.get("compute_dtype", "float32"), attn, on_cuda)
    else:
        model = modeling.load_model(run_base(run_dir), config.get("quantization", "none"),
                                    config.get("compute_dtype", "float32"), attn, on_cuda)
        if not base_only:
            model = PeftModel.from_pretrained(model, str(run_dir))
    model.eval()
    stop = [tokenizer.convert_tokens_to_ids(run.get("end_of_turn_token") or tokenizer.eos_token)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stop:
        stop.append(tokenizer.eos_token_id)
    return LoadedRun(model, tokenizer, stop)


def answer(loaded: LoadedRun, messages: list[dict[str, str]], max_new_tokens: int = 256,
           temperature: float = 0.0) -> str:
    import torch

    inputs = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)
    inputs = {key: value.to(loaded.model.device) for key, value in inputs.items()}
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with torch.no_grad():
        output = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, eos_token_id=loaded.stop_ids,
                                       pad_token_id=loaded.tokenizer.pad_token_id or loaded.stop_ids[0], **sampling)
    new = output[0][inputs["input_ids"].shape[1]:]
    return loaded.tokenizer.decode(new, skip_special_tokens=True).strip()


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a .txt file (one per line) or JSONL/JSON: records (first user turn) or {"prompt": ...}."""
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), None, None, "no such file")
    if path.suffix in (".txt", ".md", ""):
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        from curate.records.jsonl import iter_json_rows

        prompts = []
        for line_no, row in iter_json_rows(path):
            if isinstance(row, dict) and isinstance(row.get("messages"), list):
                users = [m.get("content") for m in row["messages"] if isinstance(m, dict) and m.get("role") == "user"]
                if not users:
                    raise InputError(str(path), line_no, "messages", "no user message")
                prompts.append(users[0])
            elif isinstance(row, dict) and isinstance(row.get("prompt"), str):
                prompts.append(row["prompt"])
            else:
                raise InputError(str(path), line_no, "prompt", "expected a record with messages or a 'prompt' string")
    if not prompts:
        raise InputError(str(path), None, None, "holds no prompt")
    return prompts


def chat_many(loaded: LoadedRun, prompts: Iterable[str], max_new_tokens: int,
              temperature: float) -> Iterator[tuple[str, str]]:
    for prompt in prompts:
        yield prompt, answer(loaded, [{"role": "user", "content": prompt}], max_new_tokens, temperature)
