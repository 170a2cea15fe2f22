"""The cross_encoder_features stage: every signal for a page's candidates, and the out-of-category filter."""

from __future__ import annotations

import polars as pl

from seestocks_rank.reranking.context import CatalogSignals
from seestocks_rank.reranking.out_of_category import (
    OutOfCategoryConfig,
    out_of_category,
    out_of_category_signals,
)
from seestocks_rank.reranking.signals import add_cross_encoder_scores, compute_features
from seestocks_rank.timing import timed


def candidate_features(
    candidates: pl.DataFrame,
    signals: CatalogSignals,
    centroids: pl.DataFrame,
    *,
    cross_encoder: object | None = None,
    out_of_category_config: OutOfCategoryConfig | None = None,
    timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """The ``cross_encoder_features`` stage for (``category_id, offer_id``) rows: every signal of
    :func:`compute_features`, the cross-encoder score when a model is given, and with
    ``out_of_category_config`` the out-of-category filter's signals, flag and reason."""
    timings = {} if timings is None else timings
    with timed(timings, "features_s"):
        rows = signals.rows(candidates.get_column("offer_id"))
        features = compute_features(
            candidates,
            signals.products,
            signals.vectors,
            centroids,
            signals.taxonomy,
            image_vectors=signals.image_vectors,
            image_ok=signals.image_ok,
            product_rows=rows,
        )
    with timed(timings, "cross_encoder_s"):
        features = add_cross_encoder_scores(features, signals.products, centroids, cross_encoder)
    if out_of_category_config is None:
        return features
    with timed(timings, "out_of_category_s"):
        with_images = signals.image_vectors is not None and signals.image_ok.sum() > 1
        flagged = out_of_category_signals(
            features,
            signals.products,
            signals.vectors,
            centroids,
            signals.taxonomy,
            title_vectors=signals.title_vectors,
            image_vectors=signals.image_vectors,
            image_ok=signals.image_ok,
            neighbours=signals.neighbours,
            title_voter=signals.voter("title"),
            product_rows=rows,
            page_relations=signals.page_relations(centroids),
            visual_voter=signals.voter("visual") if with_images else None,
        )
        return out_of_category(flagged, config=out_of_category_config)
