"""sft.stats on synthetic data with known answers; the judge's pairing rule with the fake engine; answer checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generators.engines.fake import FakeEngine
from sft.evaluation.judge import Side, combine, judge_pair, parse_verdict, side_view
from sft.evaluation.metrics import exact_match, gsm8k_answer, last_number, repeated_ngram_rate
from sft.stats import bootstrap_mean, bootstrap_ratio, fit_logistic, lc_win_rate, paired_difference


def test_bootstrap_mean_covers_the_true_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(2.0, 1.0, 50), rng.normal(2.0, 1.0, 2000)
    a, b = bootstrap_mean(small), bootstrap_mean(large)
    assert a.lo < 2.0 < a.hi and b.lo < 2.0 < b.hi
    assert (b.hi - b.lo) < (a.hi - a.lo) / 3  # width ~ 1/sqrt(n)
    assert abs((b.hi - b.lo) - 2 * 1.96 / math.sqrt(2000)) < 0.02
    assert math.isnan(bootstrap_mean([]).value)


def test_ratio_weights_examples_by_tokens():
    est = bootstrap_ratio([10.0, 2.0], [10, 1])
    assert est.value == pytest.approx(12 / 11)


def test_paired_difference_sees_a_small_shift_an_unpaired_view_would_miss():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 3.0, 400)  # big example-to-example spread, shared by both models
    a = difficulty + rng.normal(0, 0.1, 400)
    b = difficulty + 0.1 + rng.normal(0, 0.1, 400)
    paired = paired_difference(a, b)
    assert paired.hi < 0 and paired.excludes_zero()
    assert paired.value == pytest.approx(-0.1, abs=0.03)
    unpaired_a, unpaired_b = bootstrap_mean(a), bootstrap_mean(b)
    assert unpaired_a.hi > unpaired_b.lo  # the marginal CIs overlap
    same = paired_difference(a, a + rng.normal(0, 0.1, 400))
    assert not same.excludes_zero()


def test_paired_difference_across_seeds_is_wider_when_seeds_disagree():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, (3, 300))
    agree = paired_difference(base - 0.2, base)
    disagree = paired_difference(base + np.array([[-0.6], [0.0], [0.3]]), base)  # mean -0.1, seeds all over
    assert agree.excludes_zero()
    assert not disagree.excludes_zero()
    with pytest.raises(ValueError):
        paired_difference(np.zeros((2, 3)), np.zeros((3, 3)))


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(5)
    z = rng.normal(0, 1, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 + 2.0 * z)))).astype(float)
    beta = fit_logistic(z[:, None], y)
    assert beta[0] == pytest.approx(0.5, abs=0.08) and beta[1] == pytest.approx(2.0, abs=0.12)


def test_length_controlled_win_rate_removes_a_length_bias():
    """The judge prefers longer answers; the model's answers are longer; at equal length it is a coin flip."""
    rng = np.random.default_rng(7)
    diff = rng.normal(40, 30, 3000)  # the model writes ~40 tokens more
    p = 1 / (1 + np.exp(-(diff / 30)))  # judge: pure length preference, 0.5 at equal length
    outcome = (rng.random(3000) < p).astype(float)
    raw = bootstrap_mean(outcome)
    lc = lc_win_rate(outcome, diff, resamples=200)
    assert raw.value > 0.7 and raw.lo > 0.5
    assert lc.lo < 0.5 < lc.hi and lc.value == pytest.approx(0.5, abs=0.06)


def test_ties_count_half_in_the_length_controlled_fit():
    lc = lc_win_rate([0.5] * 20, list(range(20)), resamples=50)
    assert lc.value == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("reply,verdict", [("A", "A"), (" b.", "B"), ("Tie", "tie"), ("[[B]]", "B"),
                                           ("Answer A is better", "A"), ("I cannot decide", "invalid"),
                                           ("A, because it is right", "A"), ("The answer is A.", "A"),
                                           ("I would choose B", "B"), ("It's a tie", "tie"),
                                           ("the answer is a good one", "invalid"),
                                           ("a fine answer", "invalid")])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_pairing_rule():
    assert side_view("A", True) == "win" and side_view("A", False) == "loss" and side_view("invalid", True) == "tie"
    assert combine("win", "win") == 1.0 and combine("win", "tie") == 1.0 and combine("tie", "win") == 1.0
    assert combine("loss", "loss") == 0.0 and combine("tie", "loss") == 0.0
    assert combine("win", "loss") == 0.5 and combine("tie", "tie") == 0.5


def test_judge_pair_both_orders_with_fake_engine():
    engine = FakeEngine()
    # pair 0: X wins in both orders; pair 1: judge always says "A" (position bias) -> tie, inconsistent;
    # pair 2: X wins one order, tie in the other -> X wins; pair 3: Y wins both.
    for reply in ("A", "B", "A", "A", "A", "tie", "B", "A"):
        engine.enqueue(reply)
    x = Side("run", ["x0", "x1", "x2", "x3"], [10, 20, 30, 40])
    y = Side("base", ["y0", "y1", "y2", "y3"], [5, 5, 5, 5])
    rows, summary = judge_pair(engine, ["e0", "e1", "e2", "e3"], ["q0", "q1", "q2", "q3"], x, y)
    assert [r["outcome_x"] for r in rows] == [1.0, 0.5, 1.0, 0.0]
    assert summary["win_rate"]["value"] == pytest.approx(2.5 / 4)
    assert summary["order_inconsistency"]["value"] == pytest.approx(2 / 4)
    assert summary["x_mean_tokens"] == 25 and summary["y_mean_tokens"] == 5
    assert 0 <= summary["lc_win_rate"]["value"] <= 1
    # the first request shows X as A, the second shows Y as A
    assert "x0" in engine.requests[0].prompt.split("[Answer A]")[1].split("[Answer B]")[0]
    assert "y0" in engine.requests[1].prompt.split("[Answer A]")[1].split("[Answer B]")[0]
    assert all(r.temperature == 0.0 for r in engine.requests)


def test_judge_failures_count_as_ties():
    engine = FakeEngine().enqueue_error("HTTP 503").enqueue("B")  # second order: X is B
    rows, summary = judge_pair(engine, ["e"], ["q"], Side("x", ["a"], [1]), Side("y", ["b"], [1]))
    assert rows[0]["outcome_x"] == 1.0 and summary["failed_requests"] == 1  # tie + win -> win


def test_gsm8k_answers():
    reference = "She has 3 + 4 = 7 apples.\n#### 7"
    assert gsm8k_answer(reference) == "7" and gsm8k_answer("#### 1,200") == "1200" and gsm8k_answer("7") is None
    assert exact_match("so the answer is #### 7", reference) == (1.0, 1.0)
    assert exact_match("the answer is 7.", reference) == (0.0, 1.0)
    assert exact_match("#### 8 but maybe 7", reference) == (0.0, 0.0)
    assert exact_match("anything", "no number here") is None
    assert last_number("costs $1,234.50 total") == "1234.5"


def test_repeated_ngram_rate():
    assert repeated_ngram_rate("a b c d e f") == 0.0
    assert repeated_ngram_rate("a b c d a b c d a b c d") == pytest.approx(1 - 4 / 9)
    assert repeated_ngram_rate("short") == 0.0
