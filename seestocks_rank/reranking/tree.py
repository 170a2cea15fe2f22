"""The taxonomy as arrays for vectorised walks: product-node membership and each node's children."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from seestocks_rank.inputs.taxonomy import Taxonomy


def _membership(taxonomy: Taxonomy, category_ids: np.ndarray) -> sparse.csr_matrix:
    """Sparse ``[n_products, n_nodes]`` 0/1 matrix: product ``i`` is at or below node ``j``."""
    idx = taxonomy.index_of(category_ids)
    anc = taxonomy._anc[np.maximum(idx, 0)]
    anc[idx < 0] = -1
    rows, cols = np.nonzero(anc >= 0)
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, anc[rows, cols])), shape=(len(idx), len(taxonomy))
    )


def children_table(taxonomy: Taxonomy) -> np.ndarray:
    """``[n_nodes + 1, max_children]`` node indices padded with -1; the last row lists the roots."""
    parent = np.where(taxonomy._parent >= 0, taxonomy._parent, len(taxonomy))
    order = np.argsort(parent, kind="stable")
    counts = np.bincount(parent, minlength=len(taxonomy) + 1)
    table = np.full((len(taxonomy) + 1, max(1, int(counts.max()))), -1, dtype=np.int64)
    pos = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[parent[order], pos] = order
    return table
