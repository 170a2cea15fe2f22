"""Hierarchical categorization: a beam walk down the taxonomy, a sibling-disambiguation layer, and the
out-of-category filter that keeps mis-tagged products off category pages.

* :func:`node_prototypes` gives every taxonomy node a vector: its prompt blended with the trimmed mean of
  the products at or below it (nodes without products keep their prompt, so a bare taxonomy works).
* :func:`categorize` walks the tree level by level: the children of the ``beam`` best nodes are scored
  (``(1 - path_weight) * cosine + path_weight * parent score``) and a node may also stop the walk, so a
  product can land on an inner node. It never takes a flat argmax over all leaves.
* :class:`SiblingDisambiguator`: where the predicted node and its best sibling are within ``margin``, it
  builds discriminative prompts (the terms that separate the two siblings' titles) and re-scores the pair
  with them and with the terms' log-odds.
* :func:`predict_categories` runs both over a whole catalog (prototypes from the catalog's own tags).
* :func:`out_of_category_signals` computes the filter's signals for (page, product) pairs, and
  :func:`out_of_category` combines the categorizer's verdict, the page centroid versus the nearest other
  page, a kNN vote among tagged neighbours and the price z into a flag and a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import sparse

from seestocks_rank.embeddings import normalize_rows, rowwise_dot
from seestocks_rank.encoders import TextEncoder
from seestocks_rank.taxonomy import Taxonomy

__all__ = [
    "CategorizeResult",
    "SiblingDisambiguator",
    "categorize",
    "OutOfCategoryConfig",
    "children_table",
    "NeighbourVote",
    "knn_index",
    "neighbour_vote",
    "node_prototypes",
    "node_prompts",
    "out_of_category",
    "out_of_category_signals",
    "predict_categories",
]

_TOKEN = r"(?u)\b[a-z][a-z0-9]+\b"


def node_prompts(taxonomy: Taxonomy) -> list[str]:
    """One text per node: its name, then its path (the same form as the page prompt)."""
    return taxonomy.nodes.select(pl.format("{}. {}", pl.col("name"), pl.col("path"))).to_series().to_list()


def _membership(taxonomy: Taxonomy, category_ids: np.ndarray) -> sparse.csr_matrix:
    """Sparse ``[n_products, n_nodes]`` 0/1 matrix: product ``i`` is at or below node ``j``."""
    idx = taxonomy.index_of(category_ids)
    anc = taxonomy._anc[np.maximum(idx, 0)]
    anc[idx < 0] = -1
    rows, cols = np.nonzero(anc >= 0)
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, anc[rows, cols])), shape=(len(idx), len(taxonomy))
    )


def node_prototypes(
    taxonomy: Taxonomy,
    prompt_vectors: np.ndarray,
    product_vectors: np.ndarray | None = None,
    product_categories: np.ndarray | None = None,
    *,
    prompt_weight: float = 0.35,
    trim: float = 0.25,
) -> np.ndarray:
    """``[n_nodes, dim]`` unit vectors: the node's prompt blended with the mean of its products after
    dropping the ``trim`` share least like the first mean (robust to a few wrong tags)."""
    prompts = normalize_rows(np.asarray(prompt_vectors, dtype=np.float32))
    if product_vectors is None or product_categories is None or len(product_vectors) == 0:
        return prompts
    member = _membership(taxonomy, np.asarray(product_categories))
    counts = np.asarray(member.sum(axis=0)).ravel()
    centre = normalize_rows(np.asarray(member.T @ product_vectors))
    coo = member.tocoo()  # each member's similarity to its nodes' centres, only where it is a member
    coo.data = rowwise_dot(product_vectors, coo.row, centre, coo.col)
    order = np.lexsort((coo.data, coo.col))
    rank_in_node = np.arange(len(order)) - np.searchsorted(coo.col[order], coo.col[order])
    keep = np.empty(len(order), dtype=bool)
    keep[order] = rank_in_node >= np.floor(trim * counts[coo.col[order]]) * (counts[coo.col[order]] >= 5)
    kept = sparse.csr_matrix((np.ones(keep.sum(), np.float32), (coo.row[keep], coo.col[keep])), shape=member.shape)
    mean = normalize_rows(np.asarray(kept.T @ product_vectors))
    has = (counts > 0)[:, None]
    return np.where(has, normalize_rows(mean + prompt_weight * prompts), prompts).astype(np.float32)


def children_table(taxonomy: Taxonomy) -> np.ndarray:
    """``[n_nodes + 1, max_children]`` node indices padded with -1; the last row lists the roots."""
    parent = np.where(taxonomy._parent >= 0, taxonomy._parent, len(taxonomy))
    order = np.argsort(parent, kind="stable")
    counts = np.bincount(parent, minlength=len(taxonomy) + 1)
    table = np.full((len(taxonomy) + 1, max(1, int(counts.max()))), -1, dtype=np.int64)
    pos = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[parent[order], pos] = order
    return table


@dataclass(frozen=True)
class CategorizeResult:
    """Predicted node index and id per product, the walk score, and whether disambiguation changed it."""

    node_index: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    disambiguated: np.ndarray


def _walk(
    sims: np.ndarray,
    children: np.ndarray,
    start: np.ndarray,
    start_score: np.ndarray,
    *,
    beam: int,
    path_weight: float,
    stop_margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Beam walk from ``start`` (node index per row; ``len(taxonomy)`` is the virtual root) to a node."""
    n, virtual = sims.shape[0], children.shape[0] - 1
    nodes = start[:, None].astype(np.int64)
    score = start_score[:, None].astype(np.float64)
    done = np.zeros_like(nodes, dtype=bool)
    rows = np.arange(n)[:, None, None]
    while not done.all():
        kids = np.where(done[..., None], -1, children[nodes])  # n x b x c
        kid_sim = np.where(kids >= 0, sims[rows, np.maximum(kids, 0)], -np.inf)
        from_root = (nodes == virtual)[..., None]
        kid_score = np.where(from_root, kid_sim, (1 - path_weight) * kid_sim + path_weight * score[..., None])
        stop_score = np.where(done, score, score - stop_margin)
        stop_score = np.where((nodes == virtual) | (nodes < 0), -np.inf, stop_score)
        cand_nodes = np.concatenate([nodes, kids.reshape(n, -1)], axis=1)
        cand_score = np.concatenate([stop_score, kid_score.reshape(n, -1)], axis=1)
        cand_done = np.concatenate(
            [np.ones_like(nodes, dtype=bool), (children[np.maximum(kids, 0), 0] < 0).reshape(n, -1)], axis=1
        )
        k = min(beam, cand_nodes.shape[1])
        top = np.argsort(-cand_score, axis=1, kind="stable")[:, :k]
        nodes = np.take_along_axis(cand_nodes, top, 1)
        score = np.take_along_axis(cand_score, top, 1)
        done = np.take_along_axis(cand_done, top, 1) | ~np.isfinite(score)
    return nodes[:, 0], score[:, 0]


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
    margin: float = 0.05
    top_terms: int = 8
    lexical_terms: int = 8
    prompt_weight: float = 1.0
    lexical_weight: float = 0.02
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        names = self.taxonomy.nodes.get_column("name").to_list()
        docs = list(self.titles) + names
        cats = np.concatenate([np.asarray(self.category_ids, dtype=np.int64), self.taxonomy.ids])
        self.vectorizer = CountVectorizer(token_pattern=_TOKEN, binary=True, lowercase=True, dtype=np.float32)
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
        prompts = [text for a, b in todo for text in self.prompts(a, b)]
        vectors = self.encoder.encode(prompts)
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


def categorize(
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    prototypes: np.ndarray,
    *,
    titles: list[str] | None = None,
    disambiguator: SiblingDisambiguator | None = None,
    beam: int = 4,
    path_weight: float = 0.3,
    stop_margin: float = 0.02,
    chunk_rows: int = 2048,
) -> CategorizeResult:
    """Predict a taxonomy node per product by a beam walk over ``prototypes`` (see the module docstring);
    with ``disambiguator`` (and ``titles``), close sibling calls are re-scored."""
    children = children_table(taxonomy)
    n = len(vectors)
    node = np.empty(n, dtype=np.int64)
    score = np.empty(n, dtype=np.float64)
    changed = np.zeros(n, dtype=bool)
    protos = np.ascontiguousarray(prototypes, dtype=np.float32)
    options = {"beam": beam, "path_weight": path_weight, "stop_margin": stop_margin}
    for start in range(0, n, chunk_rows):  # a loop over chunks of products (bounded memory)
        sl = slice(start, min(n, start + chunk_rows))
        sims = np.ascontiguousarray(vectors[sl], dtype=np.float32) @ protos.T
        root = np.full(sims.shape[0], len(taxonomy), dtype=np.int64)
        node[sl], score[sl] = _walk(sims, children, root, np.zeros(len(root)), **options)
        if disambiguator is not None and titles is not None:

            def descend(rows: np.ndarray, from_nodes: np.ndarray, sims: np.ndarray = sims) -> np.ndarray:
                return _walk(sims[rows], children, from_nodes, sims[rows, from_nodes], **options)[0]

            node[sl], changed[sl] = disambiguator.refine(sims, node[sl], titles[sl], vectors[sl], descend)
    return CategorizeResult(node, taxonomy.ids[node], score, changed)


# ---------------------------------------------------------------------------- out-of-category filter
@dataclass(frozen=True)
class OutOfCategoryConfig:
    """Thresholds of :func:`out_of_category` (a pair is flagged when any signal disagrees).

    Title: fewer than ``max_vote`` of the nearest titles are tagged within the page, or fewer than
    ``title_vote`` and the categorizer puts the product elsewhere and it is closer to another page's
    centroid. Visual: the same vote over images. Price: ``|price_z| > max_price_abs_z`` while the title
    vote is below ``price_vote``. Defaults were set on a development seed of the Flipkart protocol.
    """

    neighbours: int = 10
    max_vote: float = 0.2
    title_vote: float = 0.4
    max_centroid_margin: float = 0.0
    max_price_abs_z: float = 6.0
    price_vote: float = 0.6


class ClusterKnn:
    """Approximate k-nearest neighbours among the rows of ``x`` for queries that are rows of ``x``: k-means
    lists (``sqrt(n)``, trained on a sample), every row in its nearest list, and each query searched
    exactly (one matrix product per list) in its ``probes`` nearest lists. At 565K products the candidates'
    neighbours take seconds instead of the ~100 TFLOP of an exact search; the vote only needs similar
    products, not exactly the ten nearest."""

    def __init__(self, x: np.ndarray, *, probes: int = 2, seed: int = 0) -> None:
        import faiss

        self.x = x
        n, dim = x.shape
        nlist = max(1, int(np.sqrt(n)))
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, 32 * nlist), replace=False))
        kmeans = faiss.Kmeans(dim, nlist, niter=10, seed=seed, spherical=True, min_points_per_centroid=1)
        kmeans.train(np.ascontiguousarray(x[sample]))
        self.quantizer = faiss.IndexFlatIP(dim)
        self.quantizer.add(kmeans.centroids)
        self.probes = min(probes, nlist)
        _, nearest = self._lists(np.arange(n), 1)
        order = np.argsort(nearest[:, 0], kind="stable")
        self.members = np.split(order, np.flatnonzero(np.diff(nearest[order, 0])) + 1)
        self.list_ids = nearest[order[np.r_[0, np.flatnonzero(np.diff(nearest[order, 0])) + 1]], 0]

    def _lists(self, rows: np.ndarray, probes: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((len(rows), probes), dtype=np.int64)
        for start in range(0, len(rows), 65_536):  # bounded memory per block of rows
            block = rows[start : start + 65_536]
            out[start : start + len(block)] = self.quantizer.search(np.ascontiguousarray(self.x[block]), probes)[1]
        return None, out

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, row ids)`` of the ``k`` best rows for each query row (-1 where fewer)."""
        sims = np.full((len(rows), k), -np.inf, dtype=np.float32)
        ids = np.full((len(rows), k), -1, dtype=np.int64)
        _, probe = self._lists(rows, self.probes)
        by_list = dict(zip(self.list_ids.tolist(), self.members, strict=True))
        for p in range(self.probes):  # each query's p-th nearest list, merged into its running top k
            order = np.argsort(probe[:, p], kind="stable")
            bounds = np.flatnonzero(np.diff(probe[order, p])) + 1
            for group in np.split(order, bounds):  # a loop over lists: one matrix product each
                members = by_list.get(int(probe[group[0], p]))
                if members is None or not len(group):
                    continue
                s = self.x[rows[group]] @ self.x[members].T
                top = min(k, len(members))
                part = np.argpartition(-s, top - 1, axis=1)[:, :top]
                cand_s = np.concatenate([sims[group], np.take_along_axis(s, part, 1)], axis=1)
                cand_i = np.concatenate([ids[group], members[part]], axis=1)
                best = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
                sims[group] = np.take_along_axis(cand_s, best, 1)
                ids[group] = np.take_along_axis(cand_i, best, 1)
        return np.where(np.isfinite(sims), sims, 0.0).astype(np.float32), ids


class _ExactKnn:
    def __init__(self, x: np.ndarray) -> None:
        from seestocks_rank.retrieval import build_index

        self.x = x
        self.index = build_index(x, kind="flat", use_gpu=False)

    def search(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(self.x[rows]), k)


def knn_index(vectors: np.ndarray, *, exact_below: int = 50_000) -> ClusterKnn | _ExactKnn:
    """k-nearest-neighbour search among ``vectors`` for queries that are rows of it: exact below
    ``exact_below`` rows, :class:`ClusterKnn` above."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    return _ExactKnn(x) if len(x) < exact_below else ClusterKnn(x)


class NeighbourVote:
    """The share of a row's ``k`` nearest other products whose assigned category lies within a page (a
    leave-one-out vote of the catalog's own tags), weighted by similarity. The index is built once; rows
    are searched on demand and remembered, so scoring page after page reuses earlier searches."""

    def __init__(
        self, vectors: np.ndarray, categories: np.ndarray, taxonomy: Taxonomy, k: int, *, exact_below: int = 50_000
    ) -> None:
        self.x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.categories = np.asarray(categories)
        self.taxonomy = taxonomy
        self.k = max(1, min(k, len(self.x) - 1))
        self.index = knn_index(self.x, exact_below=exact_below)
        self.nn = np.zeros((len(self.x), self.k), dtype=np.int64)
        self.weights = np.zeros((len(self.x), self.k), dtype=np.float32)
        self.searched = np.zeros(len(self.x), dtype=bool)

    def search(self, rows: np.ndarray) -> None:
        query = np.unique(np.asarray(rows, dtype=np.int64))
        query = query[~self.searched[query]]
        for start in range(0, len(query), 65_536):  # bounded memory per block of queries
            q = query[start : start + 65_536]
            sim, nn = self.index.search(q, self.k + 1)
            self_hit = nn == q[:, None]
            drop = np.where(self_hit.any(axis=1), np.argmax(self_hit, axis=1), self.k)
            keep = np.ones_like(nn, dtype=bool)
            keep[np.arange(len(q)), drop] = False
            nn = nn[keep].reshape(len(q), self.k)
            weights = np.clip(sim[keep].reshape(len(q), self.k), 0, None)
            weights[nn < 0] = 0.0
            self.nn[q], self.weights[q] = np.maximum(nn, 0), weights
            self.searched[q] = True

    def __call__(self, rows: np.ndarray, page_ids: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        self.search(rows)
        inside = self.taxonomy.is_within(self.categories[self.nn[rows]], np.asarray(page_ids)[:, None])
        w = self.weights[rows]
        return (inside * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)


def neighbour_vote(
    vectors: np.ndarray, categories: np.ndarray, taxonomy: Taxonomy, k: int, rows: np.ndarray | None = None
) -> NeighbourVote:
    """A :class:`NeighbourVote` over ``vectors``, with ``rows`` (default: every row) searched up front."""
    vote = NeighbourVote(vectors, categories, taxonomy, k)
    vote.search(np.arange(len(vote.x)) if rows is None else rows)
    return vote


def centroid_margin(
    vectors: np.ndarray, rows: np.ndarray, page_pos: np.ndarray, centroids: np.ndarray, related: np.ndarray
) -> np.ndarray:
    """Cosine to the pair's page centroid minus the best cosine to a page unrelated to it (not an ancestor
    or descendant): negative when the product looks more like another page."""
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), 16_384):  # a loop over chunks of pairs
        sl = slice(start, start + 16_384)
        sims = vectors[rows[sl]] @ centroids.T
        own = sims[np.arange(sims.shape[0]), page_pos[sl]]
        other = np.where(related[page_pos[sl]], -np.inf, sims).max(axis=1)
        out[sl] = own - np.where(np.isfinite(other), other, -1.0)
    return out


PREDICTION_COLUMNS = ("offer_id", "predicted_category_id", "predicted_score", "disambiguated", "content_hash", "basis")


def prediction_basis(taxonomy: Taxonomy, encoder: TextEncoder) -> str:
    """What a prediction depends on besides the offer itself: the text model and the taxonomy."""
    tree = hashlib.sha1(taxonomy.ids.tobytes() + taxonomy.nodes.get_column("path").str.join("|")[0].encode())
    return f"{encoder.model_version}|{tree.hexdigest()[:12]}"


def predict_categories(
    products: pl.DataFrame,
    vectors: np.ndarray,
    taxonomy: Taxonomy,
    encoder: TextEncoder,
    *,
    disambiguate: bool = True,
    previous: pl.DataFrame | None = None,
    max_fit_titles: int = 100_000,
) -> pl.DataFrame:
    """The tree walk over the catalog: ``products`` (``offer_id, title, category_id``, the retailer's
    tag) row-aligned with their title ``vectors``. Node prototypes blend each node's prompt (encoded with
    ``encoder``) with the robust mean of the products tagged at or below it; close sibling calls go through
    the :class:`SiblingDisambiguator` (its term statistics fitted on at most ``max_fit_titles`` of the
    catalog's titles and tags, a seeded sample beyond that). Returns :data:`PREDICTION_COLUMNS` in
    ``products``' order.

    Incremental: with ``previous`` (an earlier output), an offer whose title and tag are unchanged keeps its
    prediction when the ``basis`` (text model, taxonomy) is the same, so a nightly run walks only new and
    changed offers (the prototypes still come from the whole catalog)."""
    basis = prediction_basis(taxonomy, encoder)
    content = pl.concat_str(pl.col("title").fill_null(""), pl.col("category_id").cast(pl.String), separator="\x1f")
    keyed = products.select("offer_id", content.hash(seed=7).alias("content_hash")).with_row_index("_row")
    reused = keyed.clear().with_columns(
        pl.lit(None, pl.Int64).alias("predicted_category_id"),
        pl.lit(None, pl.Float32).alias("predicted_score"),
        pl.lit(None, pl.Boolean).alias("disambiguated"),
        pl.lit(None, pl.String).alias("basis"),
    )
    if previous is not None and set(PREDICTION_COLUMNS) <= set(previous.columns):
        reused = keyed.join(
            previous.filter(pl.col("basis") == basis).select(PREDICTION_COLUMNS),
            on=["offer_id", "content_hash"],
            how="inner",
        )
    todo = keyed.join(reused.select("offer_id"), on="offer_id", how="anti")
    if todo.height:
        rows = todo.get_column("_row").to_numpy()
        tags = products.get_column("category_id").to_numpy()
        prototypes = node_prototypes(taxonomy, encoder.encode(node_prompts(taxonomy)), vectors, tags)
        layer = None
        if disambiguate:
            fit = np.arange(products.height)
            if len(fit) > max_fit_titles:
                fit = np.sort(np.random.default_rng(0).choice(len(fit), max_fit_titles, replace=False))
            all_titles = products.get_column("title").fill_null("")
            layer = SiblingDisambiguator(taxonomy, encoder, all_titles.gather(fit).to_list(), tags[fit])
        titles = products.get_column("title").fill_null("").gather(rows).to_list()
        result = categorize(vectors[rows], taxonomy, prototypes, titles=titles, disambiguator=layer)
        todo = todo.with_columns(
            pl.Series("predicted_category_id", result.category_id, dtype=pl.Int64),
            pl.Series("predicted_score", result.score, dtype=pl.Float32),
            pl.Series("disambiguated", result.disambiguated, dtype=pl.Boolean),
            pl.lit(basis).alias("basis"),
        )
    else:
        todo = reused.clear()
    return (
        pl.concat([reused.select("_row", *PREDICTION_COLUMNS), todo.select("_row", *PREDICTION_COLUMNS)])
        .sort("_row")
        .drop("_row")
    )


def related_pages(profiles: pl.DataFrame, taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """The pages' centroids and which pages are related (one within the other), in ``profiles``' order."""
    page_ids = profiles.get_column("category_id").to_numpy()
    centroids = np.ascontiguousarray(profiles.get_column("centroid").to_numpy(), dtype=np.float32)
    within = taxonomy.is_within(page_ids[:, None], page_ids[None, :])
    return centroids, within | within.T


def out_of_category_signals(
    pairs: pl.DataFrame,
    products: pl.DataFrame,
    vectors: np.ndarray,
    profiles: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    title_vectors: np.ndarray | None = None,
    image_vectors: np.ndarray | None = None,
    image_ok: np.ndarray | None = None,
    neighbours: int = 10,
    title_voter: NeighbourVote | None = None,
    visual_voter: NeighbourVote | None = None,
    product_rows: np.ndarray | None = None,
    page_relations: tuple[np.ndarray, np.ndarray] | None = None,
) -> pl.DataFrame:
    """The inputs of :func:`out_of_category` for every (``category_id``, ``offer_id``) row of ``pairs``
    (other columns pass through, order kept).

    ``products``: ``offer_id, category_id`` (the retailer's tag) and ``predicted_category_id`` (from
    :func:`predict_categories`; null: unknown), row-aligned with ``vectors`` (the space of the page
    centroids), ``title_vectors`` (the title vote's space; default ``vectors``) and ``image_vectors`` /
    ``image_ok``. ``profiles``: ``category_id, centroid`` of every page (the competing pages of the
    centroid margin). Adds ``centroid_margin, predicted_category_id, predicted_within, neighbour_vote`` and,
    with images, ``visual_vote`` (null for products without an image). ``title_voter``/``visual_voter``:
    votes built once for the whole catalog (the visual one over the rows that have an image), reused
    across calls; by default each call builds its own.
    """
    if product_rows is None:
        row_of = products.select("offer_id").with_row_index("_row")
        joined = pairs.join(row_of, on="offer_id", how="left", maintain_order="left")
        if joined.get_column("_row").null_count():
            raise ValueError("out_of_category_signals: a pair references an unknown offer_id")
        rows = joined.get_column("_row").to_numpy().astype(np.int64)
    else:
        joined, rows = pairs, np.asarray(product_rows, dtype=np.int64)
    page_ids = profiles.get_column("category_id").to_numpy()
    order = np.argsort(page_ids, kind="stable")
    pair_pages = joined.get_column("category_id").to_numpy()
    slot = np.minimum(np.searchsorted(page_ids[order], pair_pages), len(order) - 1)
    if len(pair_pages) and (page_ids[order][slot] != pair_pages).any():
        raise ValueError("out_of_category_signals: a pair references a page without a profile")
    page_pos = order[slot]
    centroids, related = page_relations if page_relations is not None else related_pages(profiles, taxonomy)
    tags = products.get_column("category_id").to_numpy()
    predicted = products.get_column("predicted_category_id").fill_null(-1).to_numpy()[rows]
    vote = title_voter or NeighbourVote(vectors if title_vectors is None else title_vectors, tags, taxonomy, neighbours)
    signals = [
        pl.Series("centroid_margin", centroid_margin(vectors, rows, page_pos, centroids, related)),
        pl.Series("predicted_category_id", predicted, dtype=pl.Int64).replace(-1, None),
        pl.Series("predicted_within", taxonomy.is_within(predicted, pair_pages)).set(pl.Series(predicted < 0), None),
        pl.Series("neighbour_vote", vote(rows, pair_pages).astype(np.float32)),
    ]
    ok = None if image_vectors is None else np.ones(len(image_vectors), bool) if image_ok is None else image_ok
    if image_vectors is not None and ok.sum() > 1:
        with_image = np.flatnonzero(ok)
        local = np.full(len(ok), -1, dtype=np.int64)
        local[with_image] = np.arange(len(with_image))
        has = ok[rows]
        visual = np.full(len(rows), np.nan, dtype=np.float32)
        if has.any():
            query = local[rows[has]]
            image_vote = visual_voter or NeighbourVote(
                image_vectors[with_image], tags[with_image], taxonomy, neighbours
            )
            visual[has] = image_vote(query, pair_pages[has])
        signals.append(pl.Series("visual_vote", visual).fill_nan(None))
    return pairs.with_columns(signals)


def out_of_category(
    pairs: pl.DataFrame,
    *,
    config: OutOfCategoryConfig | None = None,
) -> pl.DataFrame:
    """Flag (page, product) pairs that do not belong on the page, naming the signal that disagreed.

    ``pairs`` columns: ``neighbour_vote`` (tag vote of the product's nearest titles), ``predicted_within``
    (the categorizer puts the product within the page), ``centroid_margin`` (cosine to the page centroid
    minus the best unrelated page's), ``price_z`` and optionally ``visual_vote``. Adds ``out_of_category``
    (bool) and ``out_of_category_reason`` (``title``, ``visual`` or ``price`` plus the figures; null when kept).
    """
    c = config or OutOfCategoryConfig()
    added = "visual_vote" not in pairs.columns
    if added:
        pairs = pairs.with_columns(pl.lit(None, pl.Float32).alias("visual_vote"))
    vote = pl.col("neighbour_vote")
    title = (vote < c.max_vote) | (
        (vote < c.title_vote) & pl.col("predicted_within").not_() & (pl.col("centroid_margin") < c.max_centroid_margin)
    )
    visual = ((pl.col("visual_vote") < c.max_vote) if "visual_vote" in pairs.columns else pl.lit(False)).fill_null(
        False
    )
    price = (pl.col("price_z").abs().fill_null(0) > c.max_price_abs_z) & (vote < c.price_vote)
    reason = (
        pl.when(title)
        .then(
            pl.format(
                "title: {} of similar titles tagged here, categorized elsewhere: {}, centroid margin {}",
                vote.round(2),
                pl.col("predicted_within").not_(),
                pl.col("centroid_margin").round(3),
            )
        )
        .when(visual)
        .then(pl.format("visual: {} of similar images tagged here", pl.col("visual_vote").round(2)))
        .when(price)
        .then(pl.format("price: robust z {} against the page", pl.col("price_z").round(1)))
        .otherwise(None)
    )
    out = pairs.with_columns(reason.alias("out_of_category_reason")).with_columns(
        pl.col("out_of_category_reason").is_not_null().alias("out_of_category")
    )
    return out.drop("visual_vote") if added else out
