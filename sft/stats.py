"""The statistics behind `curate eval` and `curate compare`: bootstrap CIs, paired differences, length control.

Every metric is a mean (or a ratio of sums) over eval examples, so its uncertainty comes
from resampling the examples (the percentile bootstrap). Two models scored on the same
examples are compared with a *paired* bootstrap: the same resampled examples for both,
so the example-to-example variance cancels. With several training seeds the resampling
is two-level (seeds, then examples), so a difference counts only when it survives both.

The length-controlled win rate follows AlpacaEval's idea in its smallest form: a logistic
fit of the judged outcome on the standardized length difference, read at zero difference
("who would win if both answers were equally long").

    from sft.stats import bootstrap_mean, paired_difference, lc_win_rate
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 1000


@dataclass
class Estimate:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def _indexes(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_mean(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                   level: float = LEVEL) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap CI (NaN estimate for an empty list)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    means = x[_indexes(rng, len(x), resamples)].mean(axis=1)
    return Estimate(float(x.mean()), *_interval(means, level), len(x))


def bootstrap_ratio(numerators: Sequence[float], denominators: Sequence[float], resamples: int = RESAMPLES,
                    seed: int = 0, level: float = LEVEL) -> Estimate:
    """sum(num) / sum(den) (e.g. NLL per token over examples), examples resampled as units."""
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if len(num) == 0 or den.sum() == 0:
        return Estimate(math.nan, math.nan, math.nan, len(num))
    rng = np.random.default_rng(seed)
    idx = _indexes(rng, len(num), resamples)
    ratios = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    return Estimate(float(num.sum() / den.sum()), *_interval(ratios, level), len(num))


def paired_difference(a: np.ndarray | Sequence, b: np.ndarray | Sequence, resamples: int = RESAMPLES,
                      seed: int = 0, level: float = LEVEL) -> Estimate:
    """Mean of ``a - b`` over examples measured on both, with a paired bootstrap CI.

    ``a`` and ``b`` are (examples,) or (seeds, examples) arrays on the same examples in the
    same order; with seeds, each resample draws seeds and examples with replacement.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    diff = a - b
    seeds, n = diff.shape
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    example_idx = _indexes(rng, n, resamples)
    if seeds == 1:
        means = diff[0][example_idx].mean(axis=1)
    else:
        seed_idx = rng.integers(0, seeds, size=(resamples, seeds))
        means = np.array([diff[seed_idx[r]][:, example_idx[r]].mean() for r in range(resamples)])
    return Estimate(float(diff.mean()), *_interval(means, level), n)


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method; ``x`` (n, k) without intercept, ``y`` in [0, 1] (ties 0.5).

    Returns (intercept, coefficients...). The small ridge keeps a perfectly separated fit finite.
    """
    design = np.column_stack([np.ones(len(y)), x])
    beta = np.zeros(design.shape[1])
    penalty = ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (y - p) - penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _lc_point(outcome: np.ndarray, length_diff: np.ndarray) -> float:
    spread = length_diff.std()
    if spread == 0:
        return float(outcome.mean())  # no length variation: nothing to control for
    beta = fit_logistic((length_diff / spread)[:, None], outcome)
    return float(1 / (1 + math.exp(-beta[0])))


def lc_win_rate(outcome: Sequence[float], length_diff: Sequence[float], resamples: int = RESAMPLES,
                seed: int = 0, level: float = LEVEL) -> Estimate:
    """Length-controlled win rate: P(win) predicted at zero standardized length difference.

    ``outcome`` is 1 / 0.5 / 0 per pair (win / tie / loss), ``length_diff`` the first side's
    length minus the other's (tokens). The CI resamples pairs and refits.
    """
    y, d = np.asarray(outcome, dtype=float), np.asarray(length_diff, dtype=float)
    if len(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    idx = _indexes(rng, len(y), resamples)
    fits = np.array([_lc_point(y[i], d[i]) for i in idx])
    return Estimate(_lc_point(y, d), *_interval(fits, level), len(y))
