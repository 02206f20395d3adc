"""Scores for SFT records: IFD and perplexity from a small local LM, length in tokens, an LLM judge.

Each scorer is a callable class (:mod:`curate.scoring.base`): ``__init__`` loads its model once,
``__call__(batch)`` maps a batch of records to one result per record, with no side effects, so
the same class runs in the local loop of :mod:`curate.scoring.run` (``curate score``) and under
Ray's ``map_batches``. Scores only add ``scores.<name>``; choosing rows is
:mod:`curate.selection`'s job.
"""
