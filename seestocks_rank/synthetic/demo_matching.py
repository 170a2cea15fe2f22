"""The demo's labelled offer pairs, for the offer matcher (generated from the demo's own product clusters)."""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.models.lexical import tokens


def demo_matching_pairs(catalog: pl.DataFrame, truth: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Labelled offer pairs on a tenth of the products offered by several retailers, as a team labels them
    for the offer matcher: each offer with the next offer of its product (same product), with the three
    other products of its category whose titles share the most words (the variants a matcher must tell
    apart: another size, model or colour), and with one other product of its category at random."""
    offers = (
        pl.concat([catalog.select("title", "brand", "price"), truth.select("cluster_id", "true_category_id",
                                                                   "bad_row_kind", "retailer")],
                  how="horizontal")
        .filter(pl.col("bad_row_kind").is_null() & pl.col("title").is_not_null())
        .unique("title", keep="first", maintain_order=True)
        .with_columns(pl.col("retailer").n_unique().over("cluster_id").alias("_shops"),
                      tokens(pl.col("title")).list.unique().alias("_words"))
    )  # fmt: skip
    clusters = offers.filter(pl.col("_shops") > 1).get_column("cluster_id").unique().sort()
    labelled = clusters.sample(fraction=0.1, seed=int(rng.integers(1 << 31)))
    part = offers.filter(pl.col("cluster_id").is_in(labelled.implode())).sort("cluster_id", "retailer")
    positives = part.with_columns(
        *[pl.col(c).shift(-1).over("cluster_id").alias(f"{c}_b") for c in ("title", "brand", "price")],
    ).filter(pl.col("title_b").is_not_null())
    others = offers.select(
        "true_category_id", pl.col("cluster_id").alias("_other"), pl.col("title").alias("title_b"),
        pl.col("brand").alias("brand_b"), pl.col("price").alias("price_b"), pl.col("_words").alias("_words_b"),
        pl.lit(rng.random(offers.height)).alias("_draw"),
    )  # fmt: skip
    candidates = (
        part.join(others, on="true_category_id")
        .filter(pl.col("_other") != pl.col("cluster_id"))
        .with_columns(
            (pl.col("_words").list.set_intersection("_words_b").list.len()
             / pl.col("_words").list.set_union("_words_b").list.len()).alias("_overlap"))
    )  # fmt: skip
    hardest = candidates.sort("_overlap", descending=True).group_by("title", maintain_order=True).head(3)
    random_other = candidates.sort("_draw").group_by("title", maintain_order=True).head(1)
    columns = [pl.col("title").alias("title_a"), pl.col("brand").alias("brand_a"), pl.col("price").alias("price_a"),
               "title_b", "brand_b", "price_b"]  # fmt: skip
    return pl.concat(
        [
            positives.select(*columns, pl.lit(1).alias("label")),
            hardest.select(*columns, pl.lit(0).alias("label")),
            random_other.select(*columns, pl.lit(0).alias("label")),
        ]
    ).sort("title_a", "title_b")
