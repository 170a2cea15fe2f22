"""Stage 2a, reranking signals: one vectorised function per signal over (category page, product) pairs.

Every signal is computed for arbitrary pairs, so the same code scores a page's candidates and the
judged pairs the fusion model is trained on. Missing inputs give nulls, never made-up values.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.lexical import term_coverage
from seestocks_rank.numeric import robust_z, rowwise_dot

FEATURE_COLUMNS = (
    "centroid_cosine",
    "centroid_cosine_z",
    "prompt_cosine",
    "name_match",
    "taxonomy_distance",
    "predicted_distance",
    "assigned_within_page",
    "price_z",
    "price_abs_z",
    "visual_similarity",
    "cross_encoder_score",
)


def name_match(titles: pl.Expr, page_names: pl.Expr) -> pl.Expr:
    """Share of the page name's words present in the title (title-category coherence, lexical)."""
    return term_coverage(page_names, titles)


def compute_features(
    pairs: pl.DataFrame,
    products: pl.DataFrame,
    product_vectors: np.ndarray,
    centroids: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    image_vectors: np.ndarray | None = None,
    image_ok: np.ndarray | None = None,
    chunk_rows: int = 65_536,
    product_rows: np.ndarray | None = None,
) -> pl.DataFrame:
    """Signals for every (``category_id``, ``offer_id``) row of ``pairs`` (other columns pass through).

    ``products``: ``offer_id, title, category_id, price`` and optionally ``predicted_category_id`` (the tree
    walk's category, :func:`seestocks_rank.categorize.predict_categories`), row-aligned with
    ``product_vectors`` (and with ``image_vectors`` / ``image_ok`` when the catalog has images).
    ``taxonomy_distance`` is the tree distance from the assigned category to the page, ``predicted_distance``
    the same from the predicted category (null without a prediction).
    ``centroids``: the ``taxonomy_centroids`` table. Pairs whose product or page is unknown raise.
    ``visual_similarity`` is the cosine between the product's image vector and the page's visual prototype,
    null where either is missing.
    """
    predicted_column = (
        pl.col("predicted_category_id").cast(pl.Int64)
        if "predicted_category_id" in products.columns
        else pl.lit(None, pl.Int64).alias("predicted_category_id")
    )
    prod = products.select(
        "offer_id",
        "title",
        pl.col("category_id").alias("assigned_category_id"),
        "price",
        predicted_column.alias("_predicted_category_id"),
    ).with_row_index("_prow")
    prof = centroids.drop("centroid", "prompt_embedding", "visual_prototype", strict=False).with_row_index("_grow")
    if product_rows is None:
        joined = pairs.join(prod, on="offer_id", how="left", maintain_order="left")
    else:  # rows already located (CatalogContext.rows): a gather instead of a join against the catalog
        joined = pl.concat([pairs, prod.drop("offer_id")[np.asarray(product_rows)]], how="horizontal")
    joined = joined.join(prof, on="category_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("_prow").is_null() | pl.col("_grow").is_null())
    if unknown.height:
        row = unknown.row(0, named=True)
        raise ValueError(
            f"{unknown.height} pair(s) reference an unknown product or page, e.g. "
            f"category_id={row['category_id']} offer_id={row['offer_id']}"
        )
    prow = joined.get_column("_prow").to_numpy().astype(np.int64)
    grow = joined.get_column("_grow").to_numpy().astype(np.int64)
    centroid_vectors = centroids.get_column("centroid").to_numpy().astype(np.float32)
    prompts = centroids.get_column("prompt_embedding").to_numpy().astype(np.float32)
    page_ids = joined.get_column("category_id").to_numpy()
    assigned = joined.get_column("assigned_category_id").to_numpy()
    distance = taxonomy.distance(assigned, page_ids)
    predicted = joined.get_column("_predicted_category_id").fill_null(-1).to_numpy()
    predicted_distance = np.where(predicted >= 0, taxonomy.distance(predicted, page_ids), -1).astype(np.float32)
    within = taxonomy.is_within(assigned, page_ids)
    leaf_name = pl.col("path").str.split(" > ").list.last()
    visual = _visual_similarity(centroids, image_vectors, image_ok, prow, grow, chunk_rows)
    return (
        joined.with_columns(
            pl.Series("centroid_cosine", rowwise_dot(product_vectors, prow, centroid_vectors, grow, chunk_rows)),
            pl.Series("prompt_cosine", rowwise_dot(product_vectors, prow, prompts, grow, chunk_rows)),
            pl.Series("taxonomy_distance", distance, dtype=pl.Float32),
            pl.Series("predicted_distance", predicted_distance).replace(-1.0, None),
            pl.Series("assigned_within_page", within, dtype=pl.Float32),
            name_match(pl.col("title"), leaf_name).alias("name_match"),
            robust_z(pl.col("price").log(), pl.col("log_price_median"), pl.col("log_price_mad"), 0.1)
            .cast(pl.Float32)
            .alias("price_z"),
            pl.Series("visual_similarity", visual, dtype=pl.Float32).fill_nan(None),
            pl.lit(None, pl.Float32).alias("cross_encoder_score"),
        )
        .with_columns(
            robust_z(pl.col("centroid_cosine"), pl.col("member_cos_median"), pl.col("member_cos_mad"), 0.02)
            .cast(pl.Float32)
            .alias("centroid_cosine_z"),
            pl.col("price_z").abs().alias("price_abs_z"),
        )
        .select(*pairs.columns, *(c for c in FEATURE_COLUMNS if c not in pairs.columns))
    )


def _visual_similarity(
    centroids: pl.DataFrame,
    image_vectors: np.ndarray | None,
    image_ok: np.ndarray | None,
    prow: np.ndarray,
    grow: np.ndarray,
    chunk_rows: int,
) -> np.ndarray:
    """Cosine of product image and page visual prototype per pair; NaN (-> null) where either is missing."""
    out = np.full(len(prow), np.nan, dtype=np.float32)
    if image_vectors is None or "visual_prototype" not in centroids.columns or not len(prow):
        return out
    proto_col = centroids.get_column("visual_prototype")
    has_proto = proto_col.is_not_null().to_numpy()
    if not has_proto.any():
        return out
    protos = np.zeros((centroids.height, image_vectors.shape[1]), dtype=np.float32)
    protos[has_proto] = np.asarray(proto_col.filter(pl.Series(has_proto)).to_numpy(), dtype=np.float32)
    ok = np.ones(len(image_vectors), dtype=bool) if image_ok is None else np.asarray(image_ok, dtype=bool)
    valid = ok[prow] & has_proto[grow]
    if valid.any():
        out[valid] = rowwise_dot(image_vectors, prow[valid], protos, grow[valid], chunk_rows)
    return out


def add_cross_encoder_scores(
    features: pl.DataFrame, products: pl.DataFrame, centroids: pl.DataFrame, cross_encoder: object | None
) -> pl.DataFrame:
    """Fill ``cross_encoder_score``: the cross-encoder reads the page's prompt (leaf name and path, as
    in retrieval) and the product title jointly. ``products``: ``offer_id, title``; ``centroids``:
    ``category_id, path``. Without a model the column stays null."""
    if cross_encoder is None or features.height == 0:
        return features
    from seestocks_rank.retrieval.centroids import page_prompt

    prompts = centroids.select("category_id", pl.col("path").map_elements(page_prompt, pl.Utf8).alias("_prompt"))
    texts = (
        features.select("category_id", "offer_id")
        .join(prompts, on="category_id", how="left", maintain_order="left")
        .join(products.select("offer_id", "title"), on="offer_id", how="left", maintain_order="left")
    )
    scores = cross_encoder.score(
        texts.get_column("_prompt").to_list(), texts.get_column("title").fill_null("").to_list()
    )
    return features.with_columns(pl.Series("cross_encoder_score", scores, dtype=pl.Float32))
