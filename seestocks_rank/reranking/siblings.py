"""The sibling-disambiguation layer of the tree walk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.reranking.tree import _membership, children_table

_TOKEN = r"(?u)\b[^\W\d_][^\W_]+\b"  # a letter of any script, then letters or digits


@dataclass
class SiblingDisambiguator:
    """Re-scores close sibling calls with discriminative prompts and the terms that separate the siblings.

    ``titles``/``category_ids``: labelled titles (may be empty: node names are always added as pseudo
    titles, so it also works on a bare taxonomy). For siblings ``a``/``b`` the distinguishing terms of
    ``a`` are those with the largest log-odds of appearing in ``a``'s titles rather than ``b``'s; the lexical
    score sums the log-odds of the title's terms among the ``lexical_terms`` top terms per side (0: all).
    """

    taxonomy: Taxonomy
    encoder: TextEncoder
    titles: list[str] = field(default_factory=list)
    category_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Defaults are what tuning on the valid splits chose on both Flipkart and the fashion catalog (and what
    # bench/results/quality.md measured): a wider margin, the terms' log-odds alone, prompt weight 0.
    margin: float = 0.08
    top_terms: int = 8
    lexical_terms: int = 8
    prompt_weight: float = 0.0
    lexical_weight: float = 0.02
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        names = self.taxonomy.nodes.get_column("name").to_list()
        docs = list(self.titles) + names
        cats = np.concatenate([np.asarray(self.category_ids, dtype=np.int64), self.taxonomy.ids])
        self.vectorizer = CountVectorizer(
            token_pattern=_TOKEN, strip_accents="unicode", binary=True, lowercase=True, dtype=np.float32
        )
        x = self.vectorizer.fit_transform(docs)
        member = _membership(self.taxonomy, cats)
        self._counts = (member.T @ x).tocsr()  # nodes x vocab, sparse: a node uses a sliver of the vocabulary
        self._counts.sort_indices()
        self._docs = np.asarray(member.sum(axis=0)).ravel().astype(np.float32)
        self._vocab = np.asarray(self.vectorizer.get_feature_names_out())
        self._names = names
        self._pair_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _node_terms(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._counts.indptr[node], self._counts.indptr[node + 1]
        return self._counts.indices[lo:hi], self._counts.data[lo:hi]

    def _log_odds(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Over the terms seen in either sibling's titles (a term neither has is no evidence): the term
        ids, their log-odds of ``a`` versus ``b``, and their counts in ``a`` and ``b``."""
        ia, ca = self._node_terms(a)
        ib, cb = self._node_terms(b)
        terms = np.union1d(ia, ib)
        count_a = np.zeros(len(terms), dtype=np.float32)
        count_b = np.zeros(len(terms), dtype=np.float32)
        count_a[np.searchsorted(terms, ia)] = ca
        count_b[np.searchsorted(terms, ib)] = cb
        s = self.smoothing
        pa = (count_a + s) / (self._docs[a] + 2 * s)
        pb = (count_b + s) / (self._docs[b] + 2 * s)
        return terms, np.log(pa / (1 - pa)) - np.log(pb / (1 - pb)), count_a, count_b

    @staticmethod
    def _top(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the ``k`` largest positive and the ``k`` most negative values of ``d``."""
        pos = np.flatnonzero(d > 0)
        neg = np.flatnonzero(d < 0)
        return pos[np.argsort(-d[pos], kind="stable")[:k]], neg[np.argsort(d[neg], kind="stable")[:k]]

    def distinguishing_terms(self, a: int, b: int) -> tuple[list[str], list[str]]:
        """The ``top_terms`` terms most typical of node ``a`` versus its sibling ``b``, and of ``b`` versus ``a``
        (node indices); a term must occur in the node's titles."""
        terms, d, count_a, count_b = self._log_odds(a, b)
        ta, tb = self._top(np.where(count_a > 0, d, 0), self.top_terms)[0], self._top(np.where(count_b > 0, d, 0),
                                                                                      self.top_terms)[1]  # fmt: skip
        return self._vocab[terms[ta]].tolist(), self._vocab[terms[tb]].tolist()

    def prompts(self, a: int, b: int) -> tuple[str, str]:
        """Discriminative prompts for siblings ``a``/``b``: each name followed by its distinguishing terms."""
        ta, tb = self.distinguishing_terms(a, b)
        return (
            f"{self._names[a]}: {', '.join(ta) or self._names[a]}",
            f"{self._names[b]}: {', '.join(tb) or self._names[b]}",
        )

    def _prepare(self, pairs: list[tuple[int, int]]) -> None:
        """Cache each new pair's terms, log-odds and prompt vectors (all prompts encoded in one batch)."""
        todo = [p for p in dict.fromkeys(pairs) if p not in self._pair_cache]
        if not todo:
            return
        if self.prompt_weight:
            vectors = self.encoder.encode([text for a, b in todo for text in self.prompts(a, b)])
        else:  # prompts carry no weight: no need to encode them
            vectors = np.zeros((2 * len(todo), self.encoder.dim), dtype=np.float32)
        k = self.lexical_terms
        for n, (a, b) in enumerate(todo):  # a loop over distinct sibling pairs (small arrays each)
            terms, d, _, _ = self._log_odds(a, b)
            keep = np.concatenate(self._top(d, k)) if k > 0 else np.arange(len(terms))
            self._pair_cache[(a, b)] = (terms[keep], d[keep], vectors[2 * n], vectors[2 * n + 1])

    def pair_scores(self, a: np.ndarray, b: np.ndarray, titles: list[str], vectors: np.ndarray) -> np.ndarray:
        """Evidence for ``a`` over ``b`` per row (positive: ``a``): prompt-cosine gap plus weighted log-odds."""
        if len(a) == 0:
            return np.zeros(0, dtype=np.float64)
        x = self.vectorizer.transform(titles).tocsr()
        pairs, inverse = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)
        keys = [(int(pa_), int(pb_)) for pa_, pb_ in pairs]
        self._prepare(keys)
        cached = [self._pair_cache[k] for k in keys]
        lengths = np.asarray([len(c[0]) for c in cached])
        weights = sparse.csr_matrix(
            (
                np.concatenate([c[1] for c in cached]).astype(np.float32),
                np.concatenate([c[0] for c in cached]).astype(np.int64),
                np.concatenate([[0], np.cumsum(lengths)]),
            ),
            shape=(len(keys), x.shape[1]),
        )
        gap = np.stack([c[2] - c[3] for c in cached])
        lexical = np.asarray(x.multiply(weights[inverse.ravel()]).sum(axis=1)).ravel()
        prompt = np.einsum("ij,ij->i", vectors, gap[inverse.ravel()])
        return self.prompt_weight * prompt + self.lexical_weight * lexical

    def refine(
        self,
        sims: np.ndarray,
        pred: np.ndarray,
        titles: list[str],
        vectors: np.ndarray,
        descend: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-down over levels: where the predicted path's node and its best sibling are within ``margin``,
        re-score the pair; on a flip, walk down again from the sibling. Returns new predictions and a
        changed mask."""
        tax = self.taxonomy
        children = children_table(tax)
        depth, anc, parent = tax._depth, tax._anc, tax._parent
        pred = pred.copy()
        changed = np.zeros(len(pred), dtype=bool)
        for level in range(1, anc.shape[1] + 1):  # a loop over taxonomy levels
            rows = np.flatnonzero(depth[pred] >= level)
            if not len(rows):
                continue
            a = anc[pred[rows], level - 1].astype(np.int64)
            sib = children[np.where(parent[a] >= 0, parent[a], len(tax))]
            sib_sim = np.where((sib >= 0) & (sib != a[:, None]), sims[rows[:, None], np.maximum(sib, 0)], -np.inf)
            best = np.argmax(sib_sim, axis=1)
            b = sib[np.arange(len(rows)), best]
            gap = sims[rows, a] - sib_sim[np.arange(len(rows)), best]
            close = np.isfinite(gap) & (gap >= 0) & (gap < self.margin)  # the walk agrees with the raw call
            if not close.any():
                continue
            r = rows[close]
            evidence = gap[close] + self.pair_scores(a[close], b[close], [titles[i] for i in r], vectors[r])
            flip = evidence < 0
            if flip.any():
                pred[r[flip]] = descend(r[flip], b[close][flip])
                changed[r[flip]] = True
        return pred, changed
