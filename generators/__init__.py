"""Teacher engines behind one interface, and the Self-Instruct algorithm with its prompts and presets.

- ``generators.engines.base``: the interface (``Request`` in, ``Result`` out), error kinds, options checks;
  ``generators.engines.factory.make_engine``: build one by name, its options checked first.
- Engines (``generators.engines``): ``openai_server`` (any OpenAI-compatible server), ``vllm_local``
  (in-process, GPU), ``llamacpp`` and ``transformers_local`` (CPU, the bundled SmolLM2), ``fake`` (tests).
- ``generators.self_instruct``: the algorithm; ``generators.run``: resume, logs, ledger, manifest;
  ``generators.estimate``: ``--dry-run`` projections.

Entry point: ``curate generate`` (``curate/commands/generate.py``) calls ``generators.run.generate``.
"""
