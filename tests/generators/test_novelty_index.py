"""The ROUGE-L novelty index gives exactly rouge-score's numbers (hence its decisions)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rouge_score import rouge_scorer, tokenizers

from generators.novelty import NoveltyIndex, rouge_l_f, rouge_tokenize

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
WORDS = ["the", "a", "of", "to", "and", "in", "is", "it", "for", "on", "with", "as", "classify", "write", "list", "find", "explain", "summarize", "sentence", "text", "number", "review", "positive", "negative", "given", "tell", "me", "whether", "question", "answer", "word", "story", "poem", "email", "3", "42"]

ODD_TEXTS = [
    "", "   ", "!!! ???", "Naïve café résumé — déjà vu", "İstanbul ǅungla ß straße", "x" * 70,
    "C++ vs. C#: which one? (2024 edition)", "e.g. i.e. etc.", "Tab\tseparated\nnew line", "数学 question 1",
    "don't won't can't", "UPPER lower MiXeD 123abc",
]


def random_texts(rng: random.Random, count: int, max_len: int = 30) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_len))) for _ in range(count)]


@pytest.mark.parametrize("text", ODD_TEXTS + random_texts(random.Random(0), 20))
def test_tokenizer_matches_rouge_score(text):
    assert rouge_tokenize(text) == tokenizers.DefaultTokenizer(use_stemmer=False).tokenize(text)


def test_scores_identical_to_rouge_score_including_long_and_empty_queries():
    rng = random.Random(1)
    pool = ODD_TEXTS + random_texts(rng, 300)
    index = NoveltyIndex(rebuild_every=64)
    for text in pool:  # grows through several re-sorts of the block plus an unsorted tail
        index.add(text)
    queries = random_texts(rng, 40) + ODD_TEXTS + [
        " ".join(rng.choice(WORDS) for _ in range(n)) for n in (63, 64, 65, 128, 129, 200)
    ] + pool[:5]
    for query in queries:
        expected = np.array([SCORER.score(query, p)["rougeL"].fmeasure for p in pool])
        check = index.check(query)
        assert np.array_equal(check.scores, expected), query
        assert check.max_score == expected.max()
        assert check.avg_score == float(np.mean(expected))
        for threshold in (0.5, 0.7, 0.9):
            assert check.is_novel(threshold) == (not expected.max() > threshold)


def test_most_similar_is_the_top_ten_in_score_order():
    pool = ["classify the review as positive or negative", "write a poem about the sea",
            "classify the email as spam or not spam", "summarize the story in one sentence"] + \
           [f"unrelated filler text number {i}" for i in range(20)]
    index = NoveltyIndex(pool)
    check = index.check("classify the review as positive or negative please")
    assert len(check.most_similar) == 10
    assert check.most_similar[0].text == pool[0]
    scores = [s.score for s in check.most_similar]
    assert scores == sorted(scores, reverse=True)
    assert check.most_similar[0].score == SCORER.score("classify the review as positive or negative please",
                                                       pool[0])["rougeL"].fmeasure


def test_threshold_is_strictly_above():
    index = NoveltyIndex(["a b c d e f g h i j"])
    # LCS 7 of 10 tokens each: P = R = F = 0.7 exactly -> not above 0.7 -> novel
    check = index.check("a b c d e f g x y z")
    assert check.max_score == pytest.approx(0.7)
    assert check.is_novel(0.7) == (not check.max_score > 0.7)


def test_reference_dp_agrees_with_bit_parallel():
    rng = random.Random(3)
    pool = random_texts(rng, 50, max_len=90)
    index = NoveltyIndex(pool)
    for query in random_texts(rng, 10, max_len=150):
        tokens = rouge_tokenize(query)
        expected = [rouge_l_f(tokens, rouge_tokenize(p)) for p in pool]
        assert index.check(query).scores.tolist() == expected


def test_empty_pool():
    check = NoveltyIndex().check("anything at all here")
    assert check.max_score == 0.0 and check.most_similar == [] and check.is_novel(0.7)


def test_ties_keep_pool_order_in_most_similar():
    pool = [f"filler sentence {i} about nothing in particular" for i in range(30)] + ["sort the list"] * 3
    check = NoveltyIndex(pool).check("sort the list")
    assert [s.index for s in check.most_similar[:3]] == [30, 31, 32]
    assert [s.score for s in check.most_similar[:3]] == [1.0, 1.0, 1.0]
