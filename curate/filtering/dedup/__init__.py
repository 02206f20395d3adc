"""Exact and MinHash LSH near-duplicate detection over record frames.

config (settings, LSH threshold maths) -> shingles (normalization, hashed n-grams) ->
minhash (signatures) -> lsh (band keys, candidate pairs) -> clusters (greedy or components,
survivors, exact duplicates). The pipeline calls two functions of :mod:`.steps`:
``features`` per chunk and ``decide`` once.
"""
