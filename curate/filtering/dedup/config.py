"""Near-duplicate settings and the LSH threshold maths that goes with them.

A MinHash signature of ``num_perm`` values is cut into ``bands`` bands of ``rows`` values;
two rows become candidates when one band is equal in both. For Jaccard similarity ``s``
that happens with probability ``1 - (1 - s**r)**b`` (the S-curve, :func:`s_curve`), whose
steepest point sits near ``(1/b)**(1/r)`` (:func:`s_curve_threshold`). ``bands`` and
``rows`` are chosen by :func:`optimal_bands`: the pair minimising the weighted area of
false positives (below the threshold) plus false negatives (above it), the same
optimisation datasketch runs, computed here with Gauss-Legendre quadrature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curate.errors import CurateError

ENGINES = ("oph", "datasketch")
"""``oph``: the product's engine (one-permutation hashing); ``datasketch``: datasketch's own hashing,
to reproduce its decisions. Other engines measured once live in bench/minhash_engines.py."""
KEEP_POLICIES = ("first", "longest", "best-score")
VERIFY_MODES = ("none", "signature", "exact")
DEDUP_ON = ("pair", "prompt", "response", "both")
MULTI_TURN = ("first-user", "all")
CLUSTERING = ("greedy", "components")
TEXT_THRESHOLD = 0.7
PAIR_THRESHOLD = 0.3
PAIR_RESPONSE_THRESHOLD = 0.4


@dataclass
class DedupConfig:
    """Near-duplicate settings; every field is written to the resolved filter_config.yaml."""

    threshold: float | None = None
    """Jaccard similarity at which two texts count as near-duplicates (the prompts', for dedup_on=pair);
    default 0.3 for pair, 0.7 for one text (each the best of its benchmark grid, bench/results/filter.md)."""
    ngram: int = 5
    """Shingle size in words."""
    num_perm: int = 128
    """MinHash permutations (signature length)."""
    bands: int | None = None
    """LSH bands; with ``rows`` overrides the optimisation from ``threshold``."""
    rows: int | None = None
    """Signature values per band."""
    seed: int = 1
    """Seed of the hash functions: same seed, same input -> same result."""
    char_ngram: int = 5
    """Character shingle size used for short texts."""
    char_shingle_below: int = 20
    """Texts with fewer words than this also get character shingles."""
    engine: str = "oph"
    """MinHash engine: oph | datasketch."""
    verify: str = "signature"
    """Check candidate pairs: none | signature (estimated Jaccard) | exact (shingle sets)."""
    keep: str = "first"
    """Which row of a cluster survives: first | longest | best-score."""
    score_key: str | None = None
    """scores field used by keep=best-score; default: the first score name found in the data."""
    dedup_on: str = "pair"
    """Text compared: pair (prompt similar AND response similar) | prompt | response | both (one text)."""
    response_threshold: float | None = None
    """dedup_on=pair: Jaccard the responses need; default 0.4."""
    short_response: int = 6
    """dedup_on=pair: a response with fewer words than this matches another when all its words are among the
    other's and the other has at most 3 more ("1860s" ~ "Answer: 1860s"; "increase" !~ "decrease")."""
    multi_turn: str = "all"
    """For conversations: first-user (first exchange only) | all (every turn)."""
    clustering: str = "greedy"
    """greedy: a row goes when it matches a row already kept (datasketch's query-then-insert, no
    chains); components: connected components of the match graph (merges chains A~B~C)."""
    max_bucket_pairs: int = 128
    """Buckets up to this size give all their pairs; larger ones a star around the first row."""
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5

    def __post_init__(self) -> None:
        self._check_choices()
        pair = self.dedup_on == "pair"
        if self.threshold is None:
            self.threshold = PAIR_THRESHOLD if pair else TEXT_THRESHOLD
        if pair and self.response_threshold is None:
            self.response_threshold = PAIR_RESPONSE_THRESHOLD
        if not pair and self.response_threshold is not None:
            raise CurateError("--response-threshold applies to --dedup-on pair")
        if not 0.0 < self.threshold < 1.0:
            raise CurateError(f"--threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.response_threshold is not None and not 0.0 < self.response_threshold < 1.0:
            raise CurateError(f"--response-threshold must be between 0 and 1 (exclusive), got "
                              f"{self.response_threshold}")
        if self.short_response < 0:
            raise CurateError(f"short_response must be at least 0, got {self.short_response}")
        if self.ngram < 1:
            raise CurateError(f"--ngram must be at least 1, got {self.ngram}")
        if self.num_perm < 2:
            raise CurateError(f"--num-perm must be at least 2, got {self.num_perm}")
        if (self.bands is None) != (self.rows is None):
            raise CurateError("give both --bands and --rows, or neither (then they come from --threshold)")
        if self.bands is None:
            self.bands, self.rows = optimal_bands(self.threshold, self.num_perm, self.false_positive_weight,
                                                  self.false_negative_weight)
        if self.bands * self.rows > self.num_perm:
            raise CurateError(f"--bands x --rows ({self.bands} x {self.rows}) exceeds --num-perm {self.num_perm}")
        if self.engine == "oph" and (self.num_perm & (self.num_perm - 1) or self.num_perm > 8192):
            raise CurateError(f"--minhash-engine oph needs a power-of-two --num-perm up to 8192, got {self.num_perm}")

    def _check_choices(self) -> None:
        for flag, value, choices in (("--minhash-engine", self.engine, ENGINES), ("--keep", self.keep, KEEP_POLICIES),
                                     ("--verify", self.verify, VERIFY_MODES), ("--clustering", self.clustering,
                                                                               CLUSTERING),
                                     ("--dedup-on", self.dedup_on, DEDUP_ON),
                                     ("--multi-turn", self.multi_turn, MULTI_TURN)):
            if value not in choices:
                raise CurateError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


def _integral(f: Any, lo: float, hi: float) -> np.ndarray:
    """Integral of ``f(s)`` over [lo, hi] (Gauss-Legendre, 64 nodes), vectorized over f's other axes."""
    s = (hi - lo) / 2 * _NODES + (hi + lo) / 2
    return (hi - lo) / 2 * np.tensordot(f(s[:, None]), _WEIGHTS, axes=(0, 0))


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising ``fp_weight * FP area + fn_weight * FN area`` of the S-curve.

    FP area: probability of becoming a candidate, integrated over s in [0, threshold];
    FN area: probability of being missed, integrated over [threshold, 1]. Same search as
    datasketch (every b x r <= num_perm; the first minimum wins).
    """
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], float)
    b, r = pairs[:, 0], pairs[:, 1]
    fp = _integral(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold)
    fn = _integral(lambda s: (1 - s**r) ** b, threshold, 1.0)
    best = int(np.argmin(fp * fp_weight + fn * fn_weight))
    return int(b[best]), int(r[best])


def s_curve_threshold(bands: int, rows: int) -> float:
    """Where the S-curve is steepest, roughly the similarity LSH really cuts at: ``(1/b)**(1/r)``."""
    return float((1.0 / bands) ** (1.0 / rows))


def s_curve(bands: int, rows: int, points: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
                                                                   0.9, 0.95)) -> dict[str, float]:
    """Probability that a pair of Jaccard ``s`` becomes a candidate: ``1 - (1 - s**r)**b``."""
    return {f"{s:.2f}": round(1.0 - (1.0 - s**rows) ** bands, 4) for s in points}
