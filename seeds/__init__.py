"""The seed tasks that ship with curate: ``seed_tasks.jsonl`` (schema and licence in README.md).

This folder is a package only so that the seeds travel as package data in a ``pip install``;
``generators.seeds.default_seeds_path()`` finds them, and ``curate generate`` uses them when
``--seeds`` is not given.
"""
