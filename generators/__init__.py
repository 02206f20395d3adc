"""Teacher engines behind one interface, and the Self-Instruct algorithm with its prompts and presets.

- ``generators.engines.base``: the interface (``Request`` in, ``Result`` out) and ``make_engine``.
- Engines: ``openai_engine`` (any OpenAI-compatible server), ``vllm_engine`` (in-process,
  GPU), ``llamacpp_engine`` and ``hf_engine`` (CPU, the bundled SmolLM2), ``fake`` (tests).
- ``generators.self_instruct``: the algorithm; ``generators.run``: resume, logs, manifest.

Entry point: ``curate generate`` (``curate/commands/generate.py``) calls ``generators.run.generate``.
"""
