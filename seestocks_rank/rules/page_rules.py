"""Stage 3, business rules on the fused scores of each page: cross-retailer dedup (keep the cheapest
offer of a product), freshness decay, a minimum-confidence cut, retailer diversity at the top, and
the final contiguous rank. Nothing is dropped: every candidate keeps a ``status`` and a ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.rules.dedup import components, number_signature
from seestocks_rank.rules.dedup import duplicate_groups as _duplicate_groups

SHOWN = "shown"


__all__ = ["SHOWN", "RuleConfig", "apply_rules", "duplicate_groups", "linked_groups", "number_signature", "rank_pages"]


@dataclass(frozen=True)
class RuleConfig:
    page_size: int = 50
    min_confidence: float = 0.35
    dedup_min_cosine: float = 0.9
    dedup_max_price_ratio: float = 1.6
    freshness_grace_days: float = 2.0
    freshness_half_life_days: float = 14.0
    diversity_top_n: int = 10
    diversity_max_per_retailer: int = 3


def duplicate_groups(
    page_ids: np.ndarray,
    vectors: np.ndarray,
    signatures: np.ndarray,
    prices: np.ndarray,
    config: RuleConfig,
    retailers: np.ndarray | None = None,
) -> np.ndarray:
    """Group label per row (see :func:`seestocks_rank.rules.dedup.duplicate_groups`) with ``config``'s
    thresholds; with ``retailers``, only offers of different retailers are linked."""
    return _duplicate_groups(
        page_ids,
        vectors,
        signatures,
        prices,
        retailers=retailers,
        min_cosine=config.dedup_min_cosine,
        max_price_ratio=config.dedup_max_price_ratio,
    )


def linked_groups(scored: pl.DataFrame, links: pl.DataFrame) -> np.ndarray:
    """Group label per row of ``scored`` (``category_id, offer_id``): rows of one page joined by a linked
    offer pair (``offer_a, offer_b``, from the offer matcher), transitively; other rows are alone."""
    rows = scored.select(pl.col("category_id"), pl.col("offer_id").cast(pl.String)).with_row_index("row")
    edges = (
        links.select(pl.col("offer_a").cast(pl.String), pl.col("offer_b").cast(pl.String))
        .join(rows.rename({"offer_id": "offer_a", "row": "i"}), on="offer_a")
        .join(rows.rename({"offer_id": "offer_b", "row": "j"}), on=["offer_b", "category_id"])
    )
    return components(scored.height, edges.get_column("i").to_numpy(), edges.get_column("j").to_numpy())


def apply_rules(
    scored: pl.DataFrame,
    vectors: np.ndarray,
    reference_time: datetime,
    config: RuleConfig | None = None,
    links: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Rank each page's scored candidates.

    ``scored``: ``category_id, offer_id, title, retailer, price, last_seen, confidence`` and optionally
    the model's raw ``score``, which breaks ties of saturated confidence, and the out-of-category
    filter's ``out_of_category_reason`` (non-null: status ``out_of_category``; plus any signals, passed
    through), row-aligned with ``vectors`` (the products' embeddings). ``links``: the offer matcher's linked
    pairs (``offer_a, offer_b``); without them the strict :func:`duplicate_groups` test groups offers. Adds
    ``freshness, final_score, duplicate_of, status, reason, rank`` (rank 1.. for shown rows, null
    otherwise) and returns rows sorted by page then rank.
    """
    config = config or RuleConfig()
    if scored.height == 0:
        return scored.with_columns(
            pl.lit(None, pl.Float64).alias("freshness"),
            pl.lit(None, pl.Float64).alias("final_score"),
            pl.lit(None, pl.Utf8).alias("duplicate_of"),
            pl.lit(None, pl.Utf8).alias("status"),
            pl.lit(None, pl.Utf8).alias("reason"),
            pl.lit(None, pl.Int32).alias("rank"),
        )
    if links is not None:
        groups = linked_groups(scored, links)
    else:
        groups = duplicate_groups(
            scored.get_column("category_id").to_numpy(),
            vectors,
            scored.select(number_signature(pl.col("title"))).to_series().to_numpy(),
            scored.get_column("price").to_numpy(),
            config,
            scored.get_column("retailer").to_numpy(),
        )
    age_days = (pl.lit(reference_time).dt.replace_time_zone("UTC") - pl.col("last_seen")).dt.total_seconds() / 86400
    df = scored.with_columns(
        pl.Series("_group", groups),
        (0.5 ** ((age_days - config.freshness_grace_days).clip(0) / config.freshness_half_life_days)).alias(
            "freshness"
        ),
    ).with_columns((pl.col("confidence") * pl.col("freshness")).alias("final_score"))
    # The group's page position comes from its best offer; the offer shown is its cheapest one that
    # passes the confidence cut (a stale offer is not shown while a fresh one exists).
    # Rows the out-of-category filter flagged (optional ``out_of_category_reason``) are never shown.
    has_flags = "out_of_category_reason" in df.columns
    flagged = pl.col("out_of_category_reason").is_not_null() if has_flags else pl.lit(False)
    passing = (pl.col("final_score") >= config.min_confidence) & flagged.not_()
    df = _group_columns(df, passing)
    # A group joined through another retailer's offer (A1 ~ B ~ A2) may still hold two offers of the kept
    # offer's retailer: those are that retailer's variants, not duplicates, so each becomes its own group.
    same_shop = (pl.col("offer_id") != pl.col("_kept")) & (pl.col("retailer") == pl.col("_kept_retailer"))
    if df.select(same_shop.any()).item():
        split = pl.when(same_shop).then(-1 - pl.int_range(pl.len())).otherwise(pl.col("_group"))
        df = _group_columns(df.with_columns(split.alias("_group")), passing)
    is_dup = pl.col("offer_id") != pl.col("_kept")
    low = pl.col("_group_score").is_null() | (pl.col("_group_score") < config.min_confidence)
    df = df.with_columns(
        pl.when(is_dup).then(pl.col("_kept")).otherwise(None).alias("duplicate_of"),
        pl.when(flagged)
        .then(pl.lit("out_of_category"))
        .when(is_dup)
        .then(pl.lit("duplicate"))
        .when(low)
        .then(pl.lit("low_confidence"))
        .otherwise(pl.lit(SHOWN))
        .alias("status"),
        pl.when(flagged)
        .then(pl.col("out_of_category_reason") if has_flags else pl.lit(None, pl.Utf8))
        .when(is_dup)
        .then(pl.lit("cheaper offer of the same product kept"))
        .when(low)
        .then(
            pl.format(
                "confidence x freshness {} below {}",
                pl.col("_group_score").round(3),
                pl.lit(config.min_confidence),
            )
        )
        .otherwise(None)
        .alias("reason"),
    )
    df = _diversify_and_rank(df, config)
    return df.drop("_group", "_group_score", "_group_raw", "_group_similarity", "_kept", "_kept_retailer")


def _group_columns(df: pl.DataFrame, passing: pl.Expr) -> pl.DataFrame:
    """Per duplicate group: its best confidence, raw score and centroid similarity (the group's place on the
    page), and the offer it shows (the cheapest that passes the cut) with that offer's retailer."""
    kept_order = (passing.not_(), "price", "final_score")
    return df.with_columns(
        pl.col("final_score").max().over("_group").alias("_group_score"),
        pl.col("score" if "score" in df.columns else "final_score").max().over("_group").alias("_group_raw"),
        pl.col("centroid_cosine" if "centroid_cosine" in df.columns else "final_score")
        .max()
        .over("_group")
        .alias("_group_similarity"),
        pl.col("offer_id").sort_by(*kept_order, descending=[False, False, True]).first().over("_group").alias("_kept"),
        pl.col("retailer")
        .sort_by(*kept_order, descending=[False, False, True])
        .first()
        .over("_group")
        .alias("_kept_retailer"),
    )


def _diversify_and_rank(df: pl.DataFrame, config: RuleConfig) -> pl.DataFrame:
    """Order shown rows by group score, then let at most ``max_per_retailer`` offers of one retailer into
    the top ``top_n`` (the others move just below it); rows past ``page_size`` are marked overflow."""
    shown = pl.col("status") == SHOWN
    ordered = df.sort(
        "category_id",
        shown.not_(),
        "_group_score",
        # Confidence saturates near 1 for clear matches and a small tree ensemble has few distinct
        # scores: the model's raw score, then the similarity to the page centroid, break those ties.
        "_group_raw",
        "_group_similarity",
        "offer_id",
        descending=[False, False, True, True, True, False],
    ).with_columns((pl.col("offer_id").cum_count().over("category_id", "retailer", shown) - 1).alias("_retailer_pos"))
    eligible = shown & (pl.col("_retailer_pos") < config.diversity_max_per_retailer)
    ordered = (
        ordered.with_columns(
            (eligible.cast(pl.Int32).cum_sum().over("category_id") - 1).alias("_eligible_pos"),
            pl.int_range(pl.len()).over("category_id").alias("_pos"),
        )
        .with_columns(
            pl.when(shown.not_())
            .then(2)
            .when(eligible & (pl.col("_eligible_pos") < config.diversity_top_n))
            .then(0)
            .otherwise(1)
            .alias("_tier")
        )
        .sort("category_id", "_tier", "_pos")
    )
    ranked = ordered.with_columns(
        pl.when(shown)
        .then(pl.int_range(1, pl.len() + 1).over("category_id"))
        .otherwise(None)
        .cast(pl.Int32)
        .alias("rank")
    )
    overflow = pl.col("rank") > config.page_size
    return ranked.with_columns(
        pl.when(overflow).then(pl.lit("overflow")).otherwise(pl.col("status")).alias("status"),
        pl.when(overflow)
        .then(pl.lit(f"beyond the page size of {config.page_size}"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(overflow).then(None).otherwise(pl.col("rank")).alias("rank"),
    ).drop("_retailer_pos", "_eligible_pos", "_pos", "_tier")


def rank_pages(
    fused: pl.DataFrame,
    signals: CatalogContext,
    config: RuleConfig | None = None,
    links: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The ``filtered_rankings`` stage: the fused scores with their offers' retailer, price and
    ``last_seen`` and their vectors (looked up in the run's :class:`CatalogContext`), through
    :func:`apply_rules` (``links``: the offer matcher's linked pairs); freshness is measured from the
    catalog's latest ``last_seen`` (the crawl time), so re-running an old catalog gives the same pages."""
    rows = signals.rows(fused.get_column("offer_id"))
    offers = signals.products.select("product_id", "title", "retailer", "price", "currency", "last_seen")[rows]
    scored = pl.concat([fused.drop(offers.columns, strict=False), offers], how="horizontal")
    return apply_rules(scored, signals.vectors[rows], signals.reference_time, config, links)
