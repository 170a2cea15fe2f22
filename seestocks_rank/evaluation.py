"""Baselines and page-quality metrics: the naive page (tagged products sorted by price) and the
share of pages showing a product that does not belong there."""

from __future__ import annotations

import polars as pl

from seestocks_rank.retrieval import page_members
from seestocks_rank.taxonomy import Taxonomy


def naive_rankings(products: pl.DataFrame, pages: pl.DataFrame, taxonomy: Taxonomy, page_size: int) -> pl.DataFrame:
    """What a price-comparison page shows without reranking: the products tagged to the page's
    category or below it, cheapest first. Columns: ``category_id, rank, offer_id`` + product columns."""
    members = page_members(products, pages, taxonomy)
    rows = products.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64)).drop("category_id")
    return (
        members.join(rows, on="row", how="inner")
        .drop("row")
        .sort("category_id", "price", "offer_id")
        .with_columns(pl.int_range(1, pl.len() + 1).over("category_id").cast(pl.Int32).alias("rank"))
        .filter(pl.col("rank") <= page_size)
    )


def page_misplacement(rankings: pl.DataFrame, truth: pl.DataFrame, taxonomy: Taxonomy, k: int) -> dict[str, float]:
    """Over pages: the share whose top ``k`` holds a product whose true category is neither the page
    nor below it, and the mean share of such products in the top ``k``.

    ``rankings``: ``category_id, rank, offer_id``; ``truth``: ``offer_id, true_category_id``.
    """
    top = rankings.filter(pl.col("rank") <= k).join(truth.select("offer_id", "true_category_id"), on="offer_id")
    if top.height == 0:
        return {"pages": 0, f"pages_with_misplaced@{k}": 0.0, f"misplaced_share@{k}": 0.0}
    wrong = ~taxonomy.is_within(top.get_column("true_category_id").to_numpy(), top.get_column("category_id").to_numpy())
    per_page = (
        top.with_columns(pl.Series("wrong", wrong))
        .group_by("category_id")
        .agg(pl.col("wrong").any().alias("any"), pl.col("wrong").mean().alias("share"))
    )
    return {
        "pages": per_page.height,
        f"pages_with_misplaced@{k}": round(float(per_page.get_column("any").mean()), 4),
        f"misplaced_share@{k}": round(float(per_page.get_column("share").mean()), 4),
    }
