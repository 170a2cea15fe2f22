"""Stage 1, candidate retrieval: one robust "ideal product" vector per category page, a FAISS index
over every product, and a batched nearest-neighbour search of all page centroids at once."""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.numeric import array_series, median_mad, normalize_rows
from seestocks_rank.retrieval.embeddings import image_vectors
from seestocks_rank.store.embedding_store import EmbeddingStore


def ancestor_pairs(taxonomy: Taxonomy) -> pl.DataFrame:
    """Every (category_id, ancestor_id) pair with the category itself included, from the nodes table."""
    nodes = taxonomy.nodes.select("category_id", "parent_id")
    pairs = [nodes.select("category_id", pl.col("category_id").alias("ancestor_id"))]
    frontier = nodes.select("category_id", pl.col("parent_id").alias("ancestor_id")).drop_nulls()
    while frontier.height:
        pairs.append(frontier)
        frontier = (
            frontier.join(nodes, left_on="ancestor_id", right_on="category_id", how="inner")
            .select("category_id", pl.col("parent_id").alias("ancestor_id"))
            .drop_nulls()
        )
    return pl.concat(pairs)


def page_members(products: pl.DataFrame, pages: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """(page category_id, row) for every product assigned to the page's category or a descendant.

    ``row`` is the product's position in ``products``.
    """
    rows = products.select("category_id").with_row_index("row")
    return (
        rows.join(ancestor_pairs(taxonomy), on="category_id", how="inner")
        .join(pages.select(pl.col("category_id").alias("ancestor_id")), on="ancestor_id", how="semi")
        .select(pl.col("ancestor_id").alias("category_id"), pl.col("row").cast(pl.Int64))
        .sort("category_id", "row")
    )


def tagged_products(catalog: pl.DataFrame, pages: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """``category_id, offer_id``: each page's tagged products (its category and below), from the catalog's
    ``offer_id, category_id``."""
    members = page_members(catalog, pages, taxonomy)
    return members.select("category_id", catalog.get_column("offer_id").gather(members.get_column("row")))


def robust_centroid(
    members: np.ndarray,
    prompt: np.ndarray,
    *,
    trim: float = 0.25,
    prompt_weight: float = 0.35,
    rounds: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """The mean of a page's members after trimming those least like the current centre, blended with
    the page's text prompt vector. Mis-tagged products sit far from the bulk and get trimmed, so a
    few percent of wrong tags barely move the centre. Returns the unit centroid and the kept mask."""
    if members.shape[0] == 0:
        return normalize_rows(prompt).astype(np.float32), np.zeros(0, dtype=bool)
    centre = normalize_rows(normalize_rows(members.mean(axis=0)) + prompt_weight * prompt)
    keep = np.ones(members.shape[0], dtype=bool)
    for _ in range(rounds):
        sims = members @ centre
        if members.shape[0] >= 5:
            keep = sims >= np.quantile(sims, trim)
        centre = normalize_rows(normalize_rows(members[keep].mean(axis=0)) + prompt_weight * prompt)
    return centre.astype(np.float32), keep


def page_prompt(path: str) -> str:
    """The text that stands for a category page: its leaf name, then its full path for context."""
    leaf = path.rsplit(" > ", 1)[-1]
    return f"{leaf}. {path}"


def category_centroids(
    pages: pl.DataFrame,
    taxonomy: Taxonomy,
    products: pl.DataFrame,
    product_vectors: np.ndarray,
    prompt_vectors: np.ndarray,
    *,
    trim: float = 0.25,
    prompt_weight: float = 0.35,
    image_vectors: np.ndarray | None = None,
    image_ok: np.ndarray | None = None,
    visual_prompt_vectors: np.ndarray | None = None,
    visual_prompt_weight: float = 0.35,
) -> pl.DataFrame:
    """One centroid row per page (``pages``: ``category_id``, row-aligned with ``prompt_vectors``).

    With ``image_vectors`` (row-aligned with ``products``, ``image_ok`` marking the rows that have one)
    each page also gets a ``visual_prototype``: the robust mean of its members' image vectors blended with
    the page prompt's embedding from the image model's text tower (``visual_prompt_vectors``, when the
    model has one), and ``n_visual_members``. A page with neither images nor a visual prompt gets null.

    ``products`` (``category_id, price``) is row-aligned with ``product_vectors``. The centroid row holds the
    robust centroid, the page's prompt vector, and the spread of its core members' similarity and
    log-price (median and MAD), which the features stage scores candidates against. Output columns:
    ``category_id, path, n_members, n_core, member_cos_median, member_cos_mad, log_price_median,
    log_price_mad, centroid, prompt_embedding``.
    """
    members = page_members(products, pages, taxonomy)
    by_page = {k[0]: g.get_column("row").to_numpy() for k, g in members.group_by("category_id")}
    log_price = np.log(products.get_column("price").to_numpy().astype(np.float64))
    page_ids = pages.get_column("category_id").to_list()
    centroid_vectors = np.zeros((len(page_ids), prompt_vectors.shape[1]), dtype=np.float32)
    stats = np.full((len(page_ids), 6), np.nan, dtype=np.float64)
    for i, cid in enumerate(page_ids):  # a loop over pages, vectorised within each page
        rows = by_page.get(cid, np.zeros(0, dtype=np.int64))
        member_vecs = product_vectors[rows]
        centroid_vectors[i], keep = robust_centroid(
            member_vecs, prompt_vectors[i], trim=trim, prompt_weight=prompt_weight
        )
        stats[i, 0:2] = (len(rows), keep.sum())
        if len(rows):
            stats[i, 2:4] = median_mad(member_vecs @ centroid_vectors[i])
            stats[i, 4:6] = median_mad(log_price[rows[keep]])
    centroids = (
        pl.DataFrame(
            {
                "category_id": pl.Series(page_ids, dtype=pl.Int64),
                "path": [taxonomy.path(c) for c in page_ids],
                "n_members": stats[:, 0].astype(np.int64),
                "n_core": stats[:, 1].astype(np.int64),
                "member_cos_median": stats[:, 2],
                "member_cos_mad": stats[:, 3],
                "log_price_median": stats[:, 4],
                "log_price_mad": stats[:, 5],
            }
        )
        .with_columns(array_series("centroid", centroid_vectors), array_series("prompt_embedding", prompt_vectors))
        .with_columns(pl.col(pl.Float64).fill_nan(None))
    )
    if image_vectors is None:  # a text-only catalog: the table is unchanged
        return centroids
    proto, has, counts = visual_prototypes(
        by_page, page_ids, image_vectors, image_ok, visual_prompt_vectors, trim=trim, prompt_weight=visual_prompt_weight
    )
    return centroids.with_columns(
        pl.Series("n_visual_members", counts, dtype=pl.Int64),
        pl.when(pl.Series(has)).then(array_series("visual_prototype", proto)).alias("visual_prototype"),
    )


def visual_prototypes(
    by_page: dict[int, np.ndarray],
    page_ids: list[int],
    image_vectors: np.ndarray,
    image_ok: np.ndarray | None,
    prompt_vectors: np.ndarray | None,
    *,
    trim: float = 0.25,
    prompt_weight: float = 0.35,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per page: the unit visual prototype, whether it exists, and how many members had an image."""
    dim = image_vectors.shape[1]
    out = np.zeros((len(page_ids), dim), dtype=np.float32)
    has = np.zeros(len(page_ids), dtype=bool)
    counts = np.zeros(len(page_ids), dtype=np.int64)
    ok = np.ones(len(image_vectors), dtype=bool) if image_ok is None else np.asarray(image_ok, dtype=bool)
    for i, cid in enumerate(page_ids):
        rows = by_page.get(cid, np.zeros(0, dtype=np.int64))
        rows = rows[ok[rows]]
        counts[i] = len(rows)
        prompt = prompt_vectors[i] if prompt_vectors is not None else np.zeros(dim, dtype=np.float32)
        if len(rows) == 0 and prompt_vectors is None:
            continue
        out[i], _ = robust_centroid(
            image_vectors[rows], prompt, trim=trim, prompt_weight=prompt_weight if prompt_vectors is not None else 0.0
        )
        has[i] = True
    return out, has, counts


def page_centroids(
    pages: pl.DataFrame,
    taxonomy: Taxonomy,
    catalog: pl.DataFrame,
    store: EmbeddingStore,
    prompt_vectors: np.ndarray,
    *,
    trim: float = 0.25,
    prompt_weight: float = 0.35,
    visual_prompt_vectors: np.ndarray | None = None,
    visual_prompt_weight: float = 0.35,
) -> pl.DataFrame:
    """The ``taxonomy_centroids`` stage: :func:`category_centroids` of every page from the catalog
    (``offer_id, category_id, price``) and its stored vectors (with the visual prototype when the store
    has image vectors)."""
    products = catalog.select("offer_id", "category_id", "price")
    images = image_vectors(products, store)
    return category_centroids(
        pages,
        taxonomy,
        products,
        store.vectors("fused", products.get_column("offer_id")),
        prompt_vectors,
        trim=trim,
        prompt_weight=prompt_weight,
        image_vectors=images[0] if images is not None else None,
        image_ok=images[1] if images is not None else None,
        visual_prompt_vectors=visual_prompt_vectors if images is not None else None,
        visual_prompt_weight=visual_prompt_weight,
    )
