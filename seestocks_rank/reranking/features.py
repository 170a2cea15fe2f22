"""The ``cross_encoder_features`` stage: every signal for a page's candidates (:mod:`.signals`), the
cross-encoder score, and the out-of-category filter's verdict (:mod:`.out_of_category`)."""

from __future__ import annotations

import polars as pl

from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.reranking.out_of_category import OutOfCategoryFilter
from seestocks_rank.reranking.signals import add_cross_encoder_scores, compute_features
from seestocks_rank.timing import timed


def candidate_features(
    candidates: pl.DataFrame,
    catalog: CatalogContext,
    centroids: pl.DataFrame,
    *,
    cross_encoder: object | None = None,
    out_of_category_filter: OutOfCategoryFilter | None = None,
    timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """Signals for (``category_id, offer_id``) rows: every signal of :func:`compute_features`, the
    cross-encoder score when a model is given, and with ``out_of_category_filter`` (built for the same
    ``catalog``) the filter's evidence, flag and reason."""
    timings = {} if timings is None else timings
    with timed(timings, "features_s"):
        rows = catalog.rows(candidates.get_column("offer_id"))
        features = compute_features(
            candidates,
            catalog.products,
            catalog.vectors,
            centroids,
            catalog.taxonomy,
            image_vectors=catalog.image_vectors,
            image_ok=catalog.image_ok,
            product_rows=rows,
        )
    with timed(timings, "cross_encoder_s"):
        features = add_cross_encoder_scores(features, catalog.products, centroids, cross_encoder)
    if out_of_category_filter is None:
        return features
    with timed(timings, "out_of_category_s"):
        return out_of_category_filter.flag(features, centroids, rows)
