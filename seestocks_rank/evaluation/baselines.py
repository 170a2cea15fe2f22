"""Baselines and page-quality metrics: the naive page (tagged products sorted by price) and the
share of pages showing a product that does not belong there."""

from __future__ import annotations

import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.centroids import page_members


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
