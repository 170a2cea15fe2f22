"""Paired statistics: standard errors of differences and the one-standard-error rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    pass


def paired_standard_error(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``a.sum() - b.sum()`` over queries drawn independently (per-query
    contributions of two rankers on the same queries): sqrt(n) * sd(a - b)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.sqrt(diff.size) * diff.std(ddof=1)) if diff.size > 1 else 0.0


def choose_within_one_standard_error(
    scores: dict[str, float], contributions: dict[str, np.ndarray]
) -> tuple[str, str, dict[str, float]]:
    """The one-standard-error rule over candidates listed simplest first: ``(chosen, best, se)`` where
    ``best`` has the highest score (ties to the simpler), ``se[name]`` is the paired standard error of
    ``name``'s score against ``best``'s (from per-query ``contributions``, rounded to 4 decimals like
    the scores) and ``chosen`` is the first candidate scoring at least ``scores[best] - se[name]``."""
    order = list(scores)
    best = max(order, key=lambda name: (scores[name], -order.index(name)))
    se = {name: round(paired_standard_error(contributions[best], contributions[name]), 4) for name in order}
    chosen = next(name for name in order if scores[name] >= scores[best] - se[name])
    return chosen, best, se


PAIRED_BASELINES = ("bm25", "bi_encoder")


def paired_differences(a: pl.DataFrame, b: pl.DataFrame, k: int = 10) -> dict[str, dict[str, float]]:
    """Ranker a minus ranker b on the same queries (``per_query_metrics`` frames), with the standard
    error of each difference over queries: ``ndcg@k`` on all and on deep queries, ``bad_pages@k`` on
    the deep queries with both kinds (negative is better there), and how many of those queries each
    ranker alone keeps clean (``deep_pages_only_a_clean`` / ``_only_b_clean``)."""
    both = a.join(b, on="query_id", suffix="_b", maintain_order="left")
    deep = both.filter(pl.col("n") > k)
    mixed = deep.filter(pl.col("mixed"))

    def difference(df: pl.DataFrame, column: str) -> dict[str, float]:
        x = df.get_column(column).cast(pl.Float64).to_numpy()
        y = df.get_column(f"{column}_b").cast(pl.Float64).to_numpy()
        n = max(x.size, 1)  # the mean difference: the summed one over n, and so its standard error
        return {
            "difference": round(float((x - y).sum()) / n, 4),
            "standard_error": round(paired_standard_error(x, y) / n, 4),
        }

    return {
        f"ndcg@{k}": difference(both, "ndcg"),
        f"ndcg@{k}.deep": difference(deep, "ndcg"),
        f"bad_pages@{k}.deep": difference(mixed, "bad_in_top"),
        "deep_pages_only_a_clean": mixed.filter(~pl.col("bad_in_top") & pl.col("bad_in_top_b")).height,
        "deep_pages_only_b_clean": mixed.filter(pl.col("bad_in_top") & ~pl.col("bad_in_top_b")).height,
    }
