"""MinHash LSH stages: shingling rules, signature engines, banding maths, clustering, keep policies."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from filter_data import edit, sentence

from curate.filtering.dedup import config, lsh, minhash, shingles, steps
from curate.filtering.dedup.config import DedupConfig


def frame(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"row": np.arange(len(texts), dtype=np.int64), "text": texts})


def test_shingles_explicit_rules_for_short_and_empty_texts():
    cfg = DedupConfig(ngram=5, char_shingle_below=0)
    sh = shingles.shingles(cfg, frame(["one two three", "", "a b c d e f g"]))
    counts = dict(sh.group_by("row").len().iter_rows())
    assert counts[0] == 1  # fewer words than n: one shingle of all the words
    assert 1 not in counts  # no words: no shingle, never enters LSH
    assert counts[2] == 3  # 7 words, 5-grams
    with_chars = shingles.shingles(DedupConfig(ngram=5, char_ngram=5, char_shingle_below=20), frame(["one two three"]))
    assert with_chars.height == 1 + len("one two three") - 5 + 1  # + character 5-grams for a short text


def test_short_texts_still_match_after_a_one_word_edit():
    cfg = DedupConfig(threshold=0.5, ngram=5)
    texts = ["What is the capital city of France today", "What is the capital city of France now"]
    sh = shingles.shingles(cfg, frame(texts))
    sets = [set(sh.filter(pl.col("row") == i)["h"].to_list()) for i in (0, 1)]
    jaccard = len(sets[0] & sets[1]) / len(sets[0] | sets[1])
    assert jaccard > 0.5  # word 5-grams alone would give 2/6


def test_exact_keys_ignore_case_spacing_and_punctuation():
    texts = ["Hello,   World! How are you?", "hello world how are you", "hello world how are they"]
    _, keys = shingles.words_and_exact_keys(DedupConfig(), frame(texts))
    keys = keys.to_list()
    assert keys[0] == keys[1] != keys[2]


def test_bands_come_from_datasketch_and_s_curve_rises():
    from datasketch.lsh import _optimal_param

    cfg = DedupConfig(threshold=0.7, num_perm=128)
    assert (cfg.bands, cfg.rows) == _optimal_param(0.7, 128, 0.5, 0.5)
    curve = list(config.s_curve(cfg.bands, cfg.rows).values())
    assert curve == sorted(curve) and curve[0] < 0.1 and curve[-1] > 0.99
    given = DedupConfig(bands=16, rows=8)
    assert (given.bands, given.rows) == (16, 8)


@pytest.mark.parametrize("engine", config.ENGINES)
def test_engines_estimate_jaccard(engine):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**64, 400, dtype=np.uint64)  # well-mixed 64-bit values, as shingles() gives
    other = np.concatenate([base[:300], rng.integers(0, 2**64, 100, dtype=np.uint64)])  # J = 300/500
    unrelated = rng.integers(0, 2**64, 400, dtype=np.uint64)
    shingles = pl.DataFrame({"row": np.repeat([0, 1, 2], 400), "h": np.concatenate([base, other, unrelated])})
    cfg = DedupConfig(engine=engine, num_perm=256)
    sig = minhash.signatures(cfg, shingles, 4)
    est = minhash.estimated_jaccard(sig, np.array([0, 0]), np.array([1, 2]))
    assert abs(est[0] - 0.6) < 0.1
    assert est[1] < 0.1
    assert (sig[3] == 0xFFFFFFFF).all()  # a row without shingles stays empty


def test_datasketch_engine_is_bit_identical_to_datasketch():
    import re

    from datasketch import MinHash

    rng = random.Random(3)
    texts = [sentence(rng, 30) for _ in range(5)] + ["tiny text"]
    cfg = DedupConfig(engine="datasketch", ngram=5)
    sig = minhash.signatures(cfg, shingles.shingles(cfg, frame(texts)), len(texts))
    for i, text in enumerate(texts):
        words = re.findall(r"\w+", text.lower())
        grams = {" ".join(words[j:j + 5]) for j in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch([g.encode() for g in grams])
        assert np.array_equal(m.hashvalues.astype(np.uint32), sig[i])


def run_near(texts, **kw):
    cfg = DedupConfig(**{"dedup_on": "both", **kw})  # one text per row
    fr = frame(texts)
    sh = shingles.shingles(cfg, fr)
    sig = minhash.signatures(cfg, sh, len(texts))
    keys = lsh.band_keys(cfg, sig)
    lengths = kw.pop("lengths", None)
    nodes = pl.DataFrame({"node": np.arange(len(texts), dtype=np.int64), "anchor": [False] * len(texts),
                          "length": [len(t) for t in texts], "score": [None] * len(texts)},
                         schema_overrides={"score": pl.Float64})
    del lengths
    chosen, stats = steps.near_duplicates(cfg, steps.Features(np.zeros(len(texts), np.uint64), sig, keys, shingles=sh), nodes)
    dropped = {n: r for n, r in chosen.select("node", "rep").iter_rows() if n != r}
    return dropped, stats


@pytest.mark.parametrize("engine", ["oph", "datasketch"])
@pytest.mark.parametrize("clustering", ["greedy", "components"])
@pytest.mark.parametrize("verify", ["none", "signature", "exact"])
def test_planted_near_duplicates_are_found(engine, clustering, verify):
    rng = random.Random(7)
    bases = [sentence(rng, 80) for _ in range(30)]
    texts = bases + [edit(bases[i], rng, 2) for i in range(10)]
    dropped, _ = run_near(texts, threshold=0.6, ngram=3, engine=engine, clustering=clustering, verify=verify)
    assert dropped == {30 + i: i for i in range(10)}


def test_greedy_keeps_chain_ends_components_merge_them():
    a = [f"t{i}" for i in range(60)]
    b = a[:45] + [f"b{i}" for i in range(15)]  # J(a, b) = 45/75 = 0.6
    c = b[:30] + [f"c{i}" for i in range(15)] + b[45:]  # J(b, c) = 0.6, J(a, c) = 30/90
    texts = [" ".join(a), " ".join(b), " ".join(c)]
    common = dict(threshold=0.5, ngram=1, verify="exact", num_perm=256, bands=64, rows=4, char_shingle_below=0)
    greedy, _ = run_near(texts, clustering="greedy", **common)
    components, _ = run_near(texts, clustering="components", **common)
    assert greedy == {1: 0}  # c is not similar to the kept a: it stays
    assert components == {1: 0, 2: 0}  # the chain a~b~c is one cluster


def test_keep_policies_and_anchor_rows():
    rng = random.Random(5)
    base = sentence(rng, 60)
    texts = [base, base + " " + sentence(rng, 3), edit(base, rng, 1)]
    cfg = DedupConfig(threshold=0.6, ngram=3, dedup_on="both")
    sig = minhash.signatures(cfg, shingles.shingles(cfg, frame(texts)), 3)
    keys = lsh.band_keys(cfg, sig)

    def survivor(keep, scores=(None, None, None), anchor=(False, False, False)):
        nodes = pl.DataFrame({"node": [0, 1, 2], "anchor": list(anchor), "length": [len(t) for t in texts],
                              "score": list(scores)}, schema_overrides={"score": pl.Float64})
        chosen, _ = steps.near_duplicates(DedupConfig(threshold=0.6, ngram=3, keep=keep, dedup_on="both"),
                                          steps.Features(np.zeros(3, np.uint64), sig, keys), nodes)
        return set(chosen["rep"].to_list())

    assert survivor("first") == {0}
    assert survivor("longest") == {1}
    assert survivor("best-score", scores=(1.0, None, 9.0)) == {2}
    assert survivor("first", anchor=(False, False, True)) == {2}


def test_same_seed_same_result_other_seed_still_finds_the_duplicates():
    rng = random.Random(9)
    bases = [sentence(rng, 50) for _ in range(40)]
    texts = bases + [edit(b, rng, 3) for b in bases[:15]]
    one, _ = run_near(texts, seed=1, threshold=0.5, ngram=3)
    again, _ = run_near(texts, seed=1, threshold=0.5, ngram=3)
    other, _ = run_near(texts, seed=2, threshold=0.5, ngram=3)
    assert one == again
    assert set(one) == set(other) == set(range(40, 55))


def test_config_errors_name_the_flag():
    from curate.errors import CurateError

    with pytest.raises(CurateError, match="--threshold"):
        DedupConfig(threshold=1.5)
    with pytest.raises(CurateError, match="--bands"):
        DedupConfig(bands=4)
    with pytest.raises(CurateError, match="exceeds --num-perm"):
        DedupConfig(bands=20, rows=10, num_perm=128)
    with pytest.raises(CurateError, match="power-of-two"):
        DedupConfig(num_perm=100, engine="oph")


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.85])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_own_band_optimiser_matches_datasketch(threshold, num_perm):
    from datasketch.lsh import _optimal_param

    assert config.optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    b, r = config.optimal_bands(threshold, num_perm)
    assert abs(config.s_curve_threshold(b, r) - threshold) < 0.15


def pair_frame(prompts, responses):
    return pl.DataFrame({"prompt": prompts, "response": responses})


def pair_dropped(prompts, responses, **kw):
    cfg = DedupConfig(dedup_on="pair", threshold=0.5, response_threshold=0.5, ngram=3, **kw)
    n = len(prompts)
    feats = steps.features(cfg, pair_frame(prompts, responses), pl.Series([True] * n))
    nodes = pl.DataFrame({"node": np.arange(n, dtype=np.int64), "exact_key": feats.exact_key,
                          "anchor": [False] * n, "length": [1] * n, "score": [None] * n},
                         schema_overrides={"score": pl.Float64})
    dups, _ = steps.decide(cfg, True, feats, nodes)
    return dict(zip(dups["node"].to_list(), dups["rep"].to_list(), strict=True))


def test_pair_keeps_every_question_on_one_passage_and_one_answer_per_question():
    rng = random.Random(11)
    passage = sentence(rng, 150)
    questions = [sentence(rng, 8) for _ in range(6)]
    answers = ["higher", "lower", "1860s", "increase", "decrease", sentence(rng, 30)]
    prompts = [f"{passage}\n\nQuestion: {q}" for q in questions]
    # six distinct tasks on one passage, then the last task again with a lightly edited answer,
    # and the first one again with the same short answer
    prompts += [prompts[5], prompts[0]]
    responses = answers + [edit(answers[5], rng, 1), "Higher"]
    assert pair_dropped(prompts, responses) == {6: 5, 7: 0}
    both = DedupConfig(dedup_on="both", threshold=0.5, ngram=3)
    texts = [f"{p}\n{r}" for p, r in zip(prompts, responses, strict=True)]
    dropped, _ = run_near(texts, **{k: getattr(both, k) for k in ("threshold", "ngram")})
    assert len(dropped) > 2  # one text over passage + answer: the shared passage merges distinct tasks


def test_pair_short_answers_compare_exactly():
    rng = random.Random(12)
    prompt = sentence(rng, 60)
    assert pair_dropped([prompt, prompt], ["increase", "decrease"]) == {}
    assert pair_dropped([prompt, edit(prompt, rng, 1)], ["Increase.", "increase"]) == {1: 0}
    assert pair_dropped([prompt, edit(prompt, rng, 1)], ["1860s", "Answer: the 1860s"]) == {1: 0}


def test_defaults_pair_and_one_text_thresholds():
    from curate.errors import CurateError

    pair, text = DedupConfig(), DedupConfig(dedup_on="both")
    assert (pair.dedup_on, pair.threshold, pair.response_threshold) == ("pair", 0.3, 0.4)
    assert (text.threshold, text.response_threshold) == (0.7, None)
    with pytest.raises(CurateError, match="--response-threshold applies to --dedup-on pair"):
        DedupConfig(dedup_on="response", response_threshold=0.5)


def test_pair_rule_is_the_same_one_pair_at_a_time_and_over_arrays():
    rng = random.Random(13)
    passage = sentence(rng, 80)
    prompts = [f"{passage} {sentence(rng, 6)}" for _ in range(6)] + [edit(passage, rng, 3) for _ in range(4)]
    responses = ["more", "Sure! more", "less", sentence(rng, 20), sentence(rng, 4), "the 1860s"] + \
                [sentence(rng, 3) for _ in range(4)]
    cfg = DedupConfig(dedup_on="pair", threshold=0.3, response_threshold=0.4, ngram=3)
    feats = steps.features(cfg, pair_frame(prompts, responses), pl.Series([True] * len(prompts)))
    a, b = np.triu_indices(len(prompts), 1)
    together, _ = steps._pair_matches(cfg, feats, a, b)
    one = steps._pair_match(cfg, feats)(np.arange(len(prompts)))
    assert together.tolist() == [one(int(i), int(j)) for i, j in zip(a, b, strict=True)]
    assert together.any() and not together.all()
