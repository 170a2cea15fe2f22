"""k-nearest-neighbour search among catalog rows and the neighbour vote of the catalog's own tags."""

from __future__ import annotations

import numpy as np

from seestocks_rank.inputs.taxonomy import Taxonomy


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
        from seestocks_rank.retrieval.index import build_index

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
