"""Exact and MinHash LSH near-duplicate detection over record frames."""
