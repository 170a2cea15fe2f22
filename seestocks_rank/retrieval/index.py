"""Stage 1, the vector index: FAISS over every product vector, all page centroids searched in one batch,
and each page's tagged products added to what the search found (retrieval can only add)."""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.timing import timed


def build_index(  # noqa: ANN201 - faiss type
    vectors: np.ndarray,
    *,
    kind: str = "flat",
    use_gpu: bool = True,
    nlist: int | None = None,
    nprobe: int | None = None,
    ef_search: int = 256,
):
    """Inner-product FAISS index over unit vectors; moved to the GPUs when faiss has any.

    ``kind``: ``flat`` (exact), ``hnsw`` (graph), or ``ivf`` (inverted lists: ``nlist`` k-means lists,
    default ``4 * sqrt(n)``, trained on a sample of 32 points per list with 10 iterations, because k-means on
    the whole catalog costs minutes and buys no recall; ``nprobe`` lists searched, default ``nlist / 8``).
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = max(1, min(n, nlist or int(4 * np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.max_points_per_centroid = 32
        index.cp.min_points_per_centroid = 1
        sample = np.random.default_rng(0).choice(n, size=min(n, 32 * nlist), replace=False)
        index.train(vectors[np.sort(sample)])
        index.nprobe = max(1, nprobe or nlist // 8)
    else:
        raise ValueError(f"unknown index kind {kind!r}: use flat, hnsw or ivf")
    if use_gpu and kind != "hnsw" and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    return index


def search_candidates(
    index,  # noqa: ANN001 - faiss index
    centroids: pl.DataFrame,
    offer_ids: pl.Series,
    k: int,
) -> pl.DataFrame:
    """Top-``k`` products per page centroid, all pages in one batched search.

    Output: ``category_id, offer_id, retrieval_rank`` (1-based), ``retrieval_score`` (cosine).
    """
    queries = np.ascontiguousarray(centroids.get_column("centroid").to_numpy(), dtype=np.float32)
    k = min(k, index.ntotal)
    scores, idx = index.search(queries, k)
    valid = idx >= 0
    page = np.repeat(centroids.get_column("category_id").to_numpy(), k).reshape(-1, k)
    rank = np.broadcast_to(np.arange(1, k + 1), idx.shape)
    return pl.DataFrame(
        {
            "category_id": pl.Series(page[valid], dtype=pl.Int64),
            "offer_id": offer_ids.gather(idx[valid]),
            "retrieval_rank": pl.Series(rank[valid], dtype=pl.Int32),
            "retrieval_score": pl.Series(scores[valid], dtype=pl.Float32),
        }
    )


def retrieve_candidates(
    centroids: pl.DataFrame,
    store: EmbeddingStore,
    k: int,
    *,
    index_kind: str = "flat",
    use_gpu: bool = False,
    timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """The ``candidate_sets`` stage: an index over every stored product vector, searched with all the
    page centroids (``centroids``) in one batch."""
    timings = {} if timings is None else timings
    with timed(timings, "index_build_s"):
        index = build_index(store.vectors("fused"), kind=index_kind, use_gpu=use_gpu)
    with timed(timings, "search_s"):
        return search_candidates(index, centroids, store.manifest.get_column("offer_id"), k)


_SCORE_ROWS = 100_000  # tagged rows scored per block: bounds the gathered vectors to ~150 MB at 384 dims


def add_tagged_products(
    candidates: pl.DataFrame,
    centroids: pl.DataFrame,
    tagged: pl.DataFrame,
    store: EmbeddingStore,
    per_page: int,
) -> pl.DataFrame:
    """Each page's candidates: the search's nearest neighbours plus the page's tagged products (its category
    and below, ``tagged``: ``category_id, offer_id``) the search missed, the ``per_page`` of them nearest the
    centroid. Retrieval recovers what the tags missed and never loses what they got right; the filter and
    the model decide what stays. ``retrieval_rank`` is re-numbered by cosine within each page.
    """
    keys = ["category_id", "offer_id"]
    missed = (
        tagged.select(keys)
        .unique()
        .join(candidates.select(keys), on=keys, how="anti")
        .join(store.manifest.select("offer_id"), on="offer_id", how="semi")
        .join(centroids.select("category_id").with_row_index("_page"), on="category_id", how="inner")
        .sort(keys)
    )
    centroid_matrix = np.asarray(centroids.get_column("centroid").to_list(), dtype=np.float32)
    pages = missed.get_column("_page").to_numpy()
    scores = np.empty(missed.height, dtype=np.float32)
    for start in range(0, missed.height, _SCORE_ROWS):  # blocks of rows, vectorised within
        block = slice(start, start + _SCORE_ROWS)
        vectors = store.vectors("fused", missed.get_column("offer_id")[block])
        scores[block] = np.einsum("ij,ij->i", vectors, centroid_matrix[pages[block]])
    added = (
        missed.drop("_page")
        .with_columns(pl.Series("retrieval_score", scores, dtype=pl.Float32))
        .filter(pl.col("retrieval_score").rank("ordinal", descending=True).over("category_id") <= per_page)
    )
    union = pl.concat([candidates.drop("retrieval_rank"), added], how="diagonal_relaxed")
    rank = pl.col("retrieval_score").rank("ordinal", descending=True).over("category_id").cast(pl.Int32)
    return (
        union.sort("category_id", "offer_id")
        .with_columns(rank.alias("retrieval_rank"))
        .select(candidates.columns)
        .sort("category_id", "retrieval_rank")
    )
