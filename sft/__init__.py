"""Training and inspection of SFT runs: `curate train` (LoRA/QLoRA/full/HFT SFT via TRL), `curate chat`,
`curate eval` and `curate compare`.

Modules of `curate train`, one job each:

- ``config``: the resolved run configuration (recipe YAML + flags through curate.config; TRL's own
  ``SFTConfig`` fields and peft's ``LoraConfig`` fields passed through).
- ``sizing``: micro-batch, accumulation and checkpointing sized to the machine before any data is read.
- ``data``: records -> eval split -> rendered samples (curate.lm.render) -> preflight.
- ``preflight``: checks that fail loudly before the first step (roles, truncation, empty labels, EOS, template).
- ``packing``: packing only where packed samples cannot see each other (per-sample SDPA or FlashAttention).
- ``modeling``: base model loading (bundled GGUF, local path, hub id), nf4 quantization, FlashAttention check.
- ``methods``: which weights train: LoRA/QLoRA adapters, full, Half Fine-Tuning (HFT) schedule.
- ``trainer``: TRL's SFTTrainer with the chunked loss (curate.lm.loss) and an exact count of real tokens.
- ``progress``: progress bar, Ctrl-C checkpoint, loss curve.
- ``rundir``: the run folder: what may start there, metrics history across resumes, the adapter's base and card.
- ``train``: the one function `curate train` calls.
- ``merge`` / ``chat``: a merged bf16 model; talking to a trained run.
"""
