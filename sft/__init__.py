"""Training and inspection of SFT runs: `curate train` (QLoRA/LoRA SFT via TRL) and `curate chat`.

Modules, one job each:

- ``config``: the resolved run configuration (recipe YAML + flags, TRL's own ``SFTConfig`` fields passed through).
- ``render``: records -> token ids and labels, loss only on assistant turns (end-of-turn token included).
- ``preflight``: checks that fail loudly before the first step (truncation, empty labels, EOS, chat template).
- ``packing``: packing only where packed samples cannot see each other (block-diagonal mask or FlashAttention).
- ``modeling``: base model loading (bundled GGUF, local path, hub id), nf4 quantization, LoRA settings.
- ``progress``: progress bar, metrics.json, loss curve, Ctrl-C checkpoint.
- ``trainer``: TRL's SFTTrainer plus an exact count of real (non-padding) tokens.
- ``train``: the one function `curate train` calls.
- ``merge`` / ``chat``: a merged bf16 model; talking to a trained run.
"""
