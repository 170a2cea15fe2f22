"""Ranking metrics on judgments and page-quality metrics on rankings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy

if TYPE_CHECKING:
    pass


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


def ranked(judgments: pl.DataFrame, scores: np.ndarray | pl.Series) -> pl.DataFrame:
    """Rank each query's products by score (descending), ties broken by product id."""
    return (
        judgments.select("query_id", "product_id", "grade")
        .with_columns(pl.Series("score", np.asarray(scores, dtype=np.float64)))
        .sort(["query_id", "score", "product_id"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("query_id").alias("rank"))
    )


def per_query_metrics(
    ranking: pl.DataFrame, *, k: int = 10, relevant_min: float, irrelevant_max: float, grade_floor: float
) -> pl.DataFrame:
    """One row per query (sorted by ``query_id``) of a ``ranked`` frame: ``n`` judged products,
    ``ndcg`` at k, ``relevant`` share of the top k, ``bad_in_top`` (a product with grade <=
    irrelevant_max in the top k) and ``mixed`` (the query has both a bad and a relevant product).

    NDCG uses gain 2^(grade - grade_floor) - 1 and the ideal order of the query's judged products
    (a query whose products all have the floor grade counts as 1)."""
    gain = 2.0 ** (pl.col("grade") - grade_floor) - 1.0
    discount = 1.0 / (pl.col("rank") + 1).log(2)
    in_top = pl.col("rank") <= k
    ideal_rank = pl.col("grade").rank("ordinal", descending=True).over("query_id")
    return (
        ranking.with_columns(ideal_rank.alias("_ideal"))
        .group_by("query_id")
        .agg(
            pl.len().alias("n"),
            (gain * discount).filter(in_top).sum().alias("dcg"),
            (gain / (pl.col("_ideal") + 1).log(2)).filter(pl.col("_ideal") <= k).sum().alias("idcg"),
            (pl.col("grade") >= relevant_min).filter(in_top).mean().alias("relevant"),
            (pl.col("grade") <= irrelevant_max).filter(in_top).any().alias("bad_in_top"),
            ((pl.col("grade") <= irrelevant_max).any() & (pl.col("grade") >= relevant_min).any()).alias("mixed"),
        )
        .with_columns(pl.when(pl.col("idcg") > 0).then(pl.col("dcg") / pl.col("idcg")).otherwise(1.0).alias("ndcg"))
        .drop("dcg", "idcg")
        .sort("query_id")
    )


def summarize_metrics(per_query: pl.DataFrame, k: int = 10) -> dict[str, dict[str, float]]:
    """``ndcg@k``, ``relevant@k`` and ``bad_pages@k`` (the share of queries showing a bad product in
    the top k, over the queries that have both kinds) of ``per_query_metrics``, on all queries and
    on the deep ones (more than k judged)."""

    def summary(df: pl.DataFrame) -> dict[str, float]:
        mixed = df.filter(pl.col("mixed"))
        return {
            f"ndcg@{k}": round(float(df.get_column("ndcg").mean() or 0.0), 4),
            f"relevant@{k}": round(float(df.get_column("relevant").mean() or 0.0), 4),
            f"bad_pages@{k}": round(float(mixed.get_column("bad_in_top").mean() or 0.0), 4),
            "queries": df.height,
            "judgments": int(df.get_column("n").sum() or 0),
            "queries_with_bad_and_relevant": mixed.height,
        }

    return {"all": summary(per_query), "deep": summary(per_query.filter(pl.col("n") > k))}


def ranking_metrics(
    ranking: pl.DataFrame, *, k: int = 10, relevant_min: float, irrelevant_max: float, grade_floor: float
) -> dict[str, dict[str, float]]:
    """``ndcg@k``, ``relevant@k`` and ``bad_pages@k`` on all queries and on the deep ones (> k judged)
    of a ``ranked`` frame: ``summarize_metrics`` of ``per_query_metrics``."""
    per_query = per_query_metrics(
        ranking, k=k, relevant_min=relevant_min, irrelevant_max=irrelevant_max, grade_floor=grade_floor
    )
    return summarize_metrics(per_query, k)


def grade_thresholds(
    grades: pl.Series, relevant_min: float | None = None, irrelevant_max: float | None = None
) -> tuple[float, float]:
    """``(relevant_min, irrelevant_max)``, each defaulting to the grade range's top and bottom quarter:
    relevant = grade >= hi - (hi - lo) / 4, irrelevant = grade <= lo + (hi - lo) / 4 ((2.5, 1.5) on a
    1-3 scale, (2.25, 0.75) on 0-3)."""
    lo, hi = float(grades.min()), float(grades.max())
    return (
        relevant_min if relevant_min is not None else hi - (hi - lo) / 4,
        irrelevant_max if irrelevant_max is not None else lo + (hi - lo) / 4,
    )


SELECTION_SCORE = "ndcg@10(all) + ndcg@10(deep) - bad_pages@10(deep)"


def selection_score(metrics: dict[str, dict[str, float]], k: int = 10) -> float:
    """The fusion's training and selection target: ``ndcg@k`` on all and on deep queries, minus the
    share of deep pages showing a bad product (``ranking_metrics``' output)."""
    return metrics["all"][f"ndcg@{k}"] + metrics["deep"][f"ndcg@{k}"] - metrics["deep"][f"bad_pages@{k}"]


def selection_contributions(per_query: pl.DataFrame, k: int = 10) -> np.ndarray:
    """Each query's share of the selection score (``per_query_metrics`` rows, in their order): they
    add up to ``selection_score`` before its rounding, so paired differences between two rankers give
    the standard error of their score difference (``paired_standard_error``)."""
    deep = pl.col("n") > k
    n_all = per_query.height
    n_deep = per_query.filter(deep).height
    n_deep_mixed = per_query.filter(deep & pl.col("mixed")).height
    return (
        per_query.select(
            pl.col("ndcg") / max(n_all, 1)
            + pl.when(deep).then(pl.col("ndcg") / max(n_deep, 1)).otherwise(0.0)
            - pl.when(deep & pl.col("mixed"))
            .then(pl.col("bad_in_top").cast(pl.Float64) / max(n_deep_mixed, 1))
            .otherwise(0.0)
        )
        .to_series()
        .to_numpy()
    )
