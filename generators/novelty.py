"""ROUGE-L novelty index: Self-Instruct's "is this instruction new?" test, fast and exact.

The published pipeline scores every candidate against every instruction in the pool with
``rouge_score`` (a Python dynamic-programming LCS per pair, fanned out to a process pool
per candidate): O(pool) Python work per candidate. Here each text is tokenized once, the
way rouge-score's default tokenizer does it (lower case, runs of characters outside
``[a-z0-9]`` are separators, no stemming), and kept as an array of token ids. The LCS
of one candidate against the whole pool is then computed at once with the bit-parallel
LCS recurrence (Allison-Dix / Hyyrö): the candidate's positions are bits of a machine
word, and each pool token updates every pool row with a few numpy operations::

    U = V & match[token];  V = (V + U) | (V - U)      # LCS = zero bits of V

Pool rows are kept sorted by length (longest first) so step ``j`` only touches the rows
that still have a ``j``-th token. The F-measure is then computed with the same float
operations as ``rouge_score.scoring.fmeasure``, so scores (and therefore accept/reject
decisions, ``most_similar`` and ``avg_similarity_score``) are identical to rouge-score's;
``tests/generators/test_novelty.py`` checks that against the package itself.

Run ``python bench/bench_novelty.py`` for the timing curve against the original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")
_WORD = 64  # bits per machine word of the bit-parallel LCS


def rouge_tokenize(text: str) -> list[str]:
    """rouge-score's default tokenizer (``use_stemmer=False``), reproduced step by step."""
    text = _NON_ALPHANUM.sub(" ", text.lower())
    return [token for token in _SPACES.split(text) if _VALID_TOKEN.match(token)]


def rouge_l_f(a: list[str], b: list[str]) -> float:
    """ROUGE-L F-measure of two token lists with a plain DP (reference for tests; slow)."""
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b):
            current.append(previous[j] + 1 if token_a == token_b else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


@dataclass(frozen=True)
class Similar:
    """One pool entry and its ROUGE-L F-measure against a candidate."""

    index: int
    text: str
    score: float


@dataclass(frozen=True)
class NoveltyCheck:
    """The scores of one candidate against the whole pool."""

    max_score: float
    most_similar: list[Similar]
    avg_score: float
    scores: np.ndarray  # one F-measure per pool entry, in insertion order

    def is_novel(self, threshold: float) -> bool:
        """Self-Instruct keeps a candidate unless some score is *above* the threshold."""
        return not self.max_score > threshold


class NoveltyIndex:
    """A growing pool of texts that scores a candidate against all of them at once."""

    def __init__(self, texts: list[str] | None = None, rebuild_every: int = 512):
        self._vocab: dict[str, int] = {"": 0}  # id 0 pads rows; it matches nothing
        self.texts: list[str] = []
        self._lengths: list[int] = []
        self._rows: list[np.ndarray] = []
        self._rebuild_every = rebuild_every
        # sorted block: token ids transposed (position, row), rows longest first
        self._block = np.zeros((0, 0), dtype=np.int32)
        self._block_rows = np.zeros(0, dtype=np.int64)  # insertion index of each block row
        self._block_active = np.zeros(0, dtype=np.int64)  # rows with more than j tokens
        self._block_size = 0
        self._tail: tuple[np.ndarray, np.ndarray] | None = None  # cached padded block of the unsorted rows
        self._lengths_array = np.zeros(0, dtype=np.int64)
        for text in texts or []:
            self.add(text)

    def __len__(self) -> int:
        return len(self.texts)

    def encode(self, text: str) -> np.ndarray:
        ids = [self._vocab.setdefault(token, len(self._vocab)) for token in rouge_tokenize(text)]
        return np.asarray(ids, dtype=np.int32)

    def add(self, text: str) -> None:
        row = self.encode(text)
        self.texts.append(text)
        self._rows.append(row)
        self._lengths.append(len(row))
        self._tail = None
        if len(self._rows) - self._block_size > max(self._rebuild_every, self._block_size // 8):
            self._rebuild()

    def _rebuild(self) -> None:
        """Re-sort every row into the block (amortised: only when the unsorted tail is long)."""
        lengths = np.asarray(self._lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        width = int(lengths.max()) if len(lengths) else 0
        block = np.zeros((width, len(order)), dtype=np.int32)
        for column, index in enumerate(order):
            row = self._rows[index]
            block[: len(row), column] = row
        self._block = block
        self._block_rows = order
        sorted_lengths = lengths[order]
        self._block_active = np.array([(sorted_lengths > j).sum() for j in range(width)], dtype=np.int64)
        self._block_size = len(self._rows)

    def lcs(self, text: str) -> tuple[np.ndarray, int]:
        """LCS length of ``text`` with every pool entry (insertion order), and its token count."""
        query = self.encode(text)
        m = len(query)
        out = np.zeros(len(self._rows), dtype=np.int64)
        if m == 0 or not self._rows:
            return out, m
        words = (m + _WORD - 1) // _WORD
        # match[w, token] has bit i set when query[w*64 + i] == token
        match = np.zeros((words, len(self._vocab)), dtype=np.uint64)
        for position, token in enumerate(query.tolist()):
            match[position // _WORD, token] |= np.uint64(1) << np.uint64(position % _WORD)
        if self._block_size:
            out[self._block_rows] = _bit_parallel_lcs(self._block, self._block_active, match, m)
        if len(self._rows) > self._block_size:
            block, active = self._tail_block()
            out[self._block_size :] = _bit_parallel_lcs(block, active, match, m)
        return out, m

    def _tail_block(self) -> tuple[np.ndarray, np.ndarray]:
        if self._tail is None:
            tail = self._rows[self._block_size :]
            width = max(len(row) for row in tail)
            block = np.zeros((width, len(tail)), dtype=np.int32)
            for column, row in enumerate(tail):
                block[: len(row), column] = row
            self._tail = (block, np.full(width, len(tail), dtype=np.int64))  # padding id 0 is a no-op
        return self._tail

    def lengths(self) -> np.ndarray:
        if len(self._lengths_array) != len(self._lengths):
            self._lengths_array = np.asarray(self._lengths, dtype=np.int64)
        return self._lengths_array

    def check(self, text: str, top_k: int = 10) -> NoveltyCheck:
        """ROUGE-L F-measures of ``text`` against the pool, as rouge-score computes them."""
        lcs, m = self.lcs(text)
        scores = f_measures(lcs, m, self.lengths())
        if not len(scores):
            return NoveltyCheck(0.0, [], 0.0, scores)
        top = top_indices(scores, top_k)
        most_similar = [Similar(int(i), self.texts[i], float(scores[i])) for i in top]
        return NoveltyCheck(float(scores.max()), most_similar, float(np.mean(scores)), scores)


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first, ties in pool order (argpartition, then a small sort)."""
    if len(scores) > 4 * k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:k]


def f_measures(lcs: np.ndarray, query_len: int, pool_lengths: np.ndarray) -> np.ndarray:
    """rouge-score's F-measure, same float operations: P = lcs/|pool|, R = lcs/|query|, 2PR/(P+R)."""
    scores = np.zeros(len(lcs), dtype=np.float64)
    if query_len == 0:
        return scores
    hit = (lcs > 0) & (pool_lengths > 0)
    precision = lcs[hit] / pool_lengths[hit]
    recall = lcs[hit] / query_len
    scores[hit] = 2 * precision * recall / (precision + recall)
    return scores


def _bit_parallel_lcs(block: np.ndarray, active: np.ndarray, match: np.ndarray, m: int) -> np.ndarray:
    """LCS of the query (bits of ``match``) with each column of ``block``; see the module docstring."""
    words, columns = match.shape[0], block.shape[1]
    state = np.full((words, columns), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    u_buf = np.empty(columns, dtype=np.uint64)
    sum_buf = np.empty(columns, dtype=np.uint64)
    match0 = match[0]
    for j in range(block.shape[0]):
        k = int(active[j])
        if k == 0:
            break
        tokens = block[j, :k]
        if words == 1:  # in place, no temporaries: u = v & M[t]; v = (v + u) | (v ^ u)
            v, u, total = state[0, :k], u_buf[:k], sum_buf[:k]
            np.take(match0, tokens, out=u)
            np.bitwise_and(u, v, out=u)
            np.add(v, u, out=total)
            np.bitwise_xor(v, u, out=v)  # v - u == v ^ u because u is a subset of v
            np.bitwise_or(v, total, out=v)
            continue
        carry = np.zeros(k, dtype=np.uint64)
        for w in range(words):  # multi-word addition with carry for queries over 64 tokens
            v = state[w, :k]
            u = v & match[w, tokens]
            partial = v + u
            total = partial + carry
            carry = ((partial < v) | (total < partial)).astype(np.uint64)
            state[w, :k] = total | (v ^ u)
    zeros = np.zeros(columns, dtype=np.int64)
    for w in range(words):
        bits = min(_WORD, m - w * _WORD)
        mask = np.uint64((1 << bits) - 1) if bits < _WORD else np.uint64(0xFFFFFFFFFFFFFFFF)
        zeros += bits - np.bitwise_count(state[w] & mask).astype(np.int64)
    return zeros
