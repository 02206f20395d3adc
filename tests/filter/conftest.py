"""Fixtures for the filter tests; the helpers live in filter_data.py."""

from __future__ import annotations

import random

import pytest
from filter_data import edit, record, sentence


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture
def dup_records(rng: random.Random) -> tuple[list[dict], dict[str, int]]:
    """20 distinct long records; 5 of them get 2 light edited copies each (planted near-duplicates)."""
    rows, cluster_of = [], {}
    for c in range(20):
        prompt, response = sentence(rng, 40), sentence(rng, 60)
        base = record(prompt, response, cluster=c)
        rows.append(base)
        cluster_of[base["id"]] = c
        if c < 5:
            for _ in range(2):
                copy = record(edit(prompt, rng), edit(response, rng), cluster=c)
                rows.append(copy)
                cluster_of[copy["id"]] = c
    return rows, cluster_of
