"""Stage 2a, reranking signals: one vectorised function per signal over (category page, product) pairs.

Every signal is computed for arbitrary pairs, so the same code scores a page's candidates and the
judged pairs the fusion model is trained on. Missing inputs give nulls, never made-up values.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.taxonomy import Taxonomy

FEATURE_COLUMNS = (
    "centroid_cosine",
    "centroid_cosine_z",
    "prompt_cosine",
    "name_match",
    "taxonomy_distance",
    "assigned_within_page",
    "price_z",
    "price_abs_z",
    "visual_similarity",
    "cross_encoder_score",
)
_MAD_TO_SIGMA = 1.4826
_TOKEN = r"[0-9a-záéíóúñüàèìòùç]+"


def _tokens(expr: pl.Expr) -> pl.Expr:
    """Lower-cased word tokens with a light plural strip (peppers -> pepper, bags -> bag, boxes -> boxe)."""
    return (
        expr.str.to_lowercase()
        .str.extract_all(_TOKEN)
        .list.eval(pl.element().str.replace(r"^(.{2,}[^s])s$", "$1"))
        .list.unique()
    )


def name_match(titles: pl.Expr, page_names: pl.Expr) -> pl.Expr:
    """Share of the page name's words present in the title (title-category coherence, lexical)."""
    name_tokens = _tokens(page_names)
    overlap = _tokens(titles).list.set_intersection(name_tokens).list.len()
    return (overlap / name_tokens.list.len().clip(1)).cast(pl.Float32)


def robust_z(values: pl.Expr, median: pl.Expr, mad: pl.Expr, floor: float) -> pl.Expr:
    """(value - median) / (1.4826 * MAD), the MAD floored so tight pages don't explode."""
    return ((values - median) / (pl.max_horizontal(mad, pl.lit(floor)) * _MAD_TO_SIGMA)).cast(pl.Float32)


def _rowwise_dot(a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray, chunk: int) -> np.ndarray:
    out = np.empty(len(a_rows), dtype=np.float32)
    for start in range(0, len(a_rows), chunk):
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("ij,ij->i", a[a_rows[sl]], b[b_rows[sl]])
    return out


def compute_features(
    pairs: pl.DataFrame,
    products: pl.DataFrame,
    product_vectors: np.ndarray,
    profiles: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    chunk_rows: int = 65_536,
) -> pl.DataFrame:
    """Signals for every (``category_id``, ``offer_id``) row of ``pairs`` (other columns pass through).

    ``products``: ``offer_id, title, category_id, price``, row-aligned with ``product_vectors``.
    ``profiles``: the ``taxonomy_centroids`` table. Pairs whose product or page is unknown raise.
    """
    prod = products.select(
        "offer_id", "title", pl.col("category_id").alias("assigned_category_id"), "price"
    ).with_row_index("_prow")
    prof = profiles.drop("centroid", "prompt_embedding").with_row_index("_grow")
    joined = pairs.join(prod, on="offer_id", how="left").join(prof, on="category_id", how="left")
    unknown = joined.filter(pl.col("_prow").is_null() | pl.col("_grow").is_null())
    if unknown.height:
        row = unknown.row(0, named=True)
        raise ValueError(
            f"{unknown.height} pair(s) reference an unknown product or page, e.g. "
            f"category_id={row['category_id']} offer_id={row['offer_id']}"
        )
    prow = joined.get_column("_prow").to_numpy().astype(np.int64)
    grow = joined.get_column("_grow").to_numpy().astype(np.int64)
    centroids = profiles.get_column("centroid").to_numpy().astype(np.float32)
    prompts = profiles.get_column("prompt_embedding").to_numpy().astype(np.float32)
    page_ids = joined.get_column("category_id").to_numpy()
    assigned = joined.get_column("assigned_category_id").to_numpy()
    distance = taxonomy.distance(assigned, page_ids)
    within = taxonomy.is_within(assigned, page_ids)
    leaf_name = pl.col("path").str.split(" > ").list.last()
    return (
        joined.with_columns(
            pl.Series("centroid_cosine", _rowwise_dot(product_vectors, prow, centroids, grow, chunk_rows)),
            pl.Series("prompt_cosine", _rowwise_dot(product_vectors, prow, prompts, grow, chunk_rows)),
            pl.Series("taxonomy_distance", distance, dtype=pl.Float32),
            pl.Series("assigned_within_page", within, dtype=pl.Float32),
            name_match(pl.col("title"), leaf_name).alias("name_match"),
            robust_z(pl.col("price").log(), pl.col("log_price_median"), pl.col("log_price_mad"), 0.1).alias("price_z"),
            pl.lit(None, pl.Float32).alias("visual_similarity"),
            pl.lit(None, pl.Float32).alias("cross_encoder_score"),
        )
        .with_columns(
            robust_z(pl.col("centroid_cosine"), pl.col("member_cos_median"), pl.col("member_cos_mad"), 0.02).alias(
                "centroid_cosine_z"
            ),
            pl.col("price_z").abs().alias("price_abs_z"),
        )
        .select(*pairs.columns, *(c for c in FEATURE_COLUMNS if c not in pairs.columns))
    )
