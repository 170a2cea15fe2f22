"""Naive versus reranked pages, read from the analysts' DuckDB file (and, for the demo, its truth)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from seestocks_rank.evaluation.metrics import page_misplacement
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.store.layout import DataRoot


@dataclass(frozen=True)
class Report:
    text: str
    metrics: dict[str, dict[str, float]]


def _pick_pages(pages: pl.DataFrame, wanted: list[str], n: int = 2) -> list[int]:
    chosen: list[int] = []
    for w in wanted:
        hit = pages.filter((pl.col("category_id").cast(pl.Utf8) == w) | pl.col("path").str.ends_with(w))
        if hit.height:
            chosen.append(int(hit["category_id"][0]))
    return chosen or pages.get_column("category_id").head(n).to_list()


def _side_by_side(
    naive: pl.DataFrame, reranked: pl.DataFrame, truth: pl.DataFrame | None, tree: Taxonomy, page: int, k: int
) -> list[str]:
    def column(df: pl.DataFrame) -> list[str]:
        top = df.filter(pl.col("category_id") == page).sort("rank").head(k)
        if truth is not None:
            top = top.join(truth.select("offer_id", "true_category_id"), on="offer_id", how="left")
            wrong = ~tree.is_within(top["true_category_id"].fill_null(-1).to_numpy(), top["category_id"].to_numpy())
        else:
            wrong = [False] * top.height
        return [
            f"{'x' if bad else ' '} {r['rank']:>2}. {r['title'][:46]:<46} {r['price']:>8.2f} {r['retailer'][:11]}"
            for r, bad in zip(top.iter_rows(named=True), wrong, strict=True)
        ]

    left, right = column(naive), column(reranked)
    width = 76
    lines = [
        f"\n== {tree.path(page)} (category {page}) ==",
        f"{'NAIVE: tagged products, cheapest first':<{width}}   RERANKED by the pipeline",
    ]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"{a:<{width}}   {b}")
    if truth is not None:
        lines.append("(x = the product's true category is not this page's category)")
    return lines


def comparison_report(root: DataRoot, pages: list[str], k: int = 10) -> Report:
    """Top ``k`` of the chosen pages, naive versus reranked, plus page-quality metrics over all pages
    when the demo's ground truth is present."""
    db = root.duckdb
    if not db.exists():
        raise SystemExit(f"no DuckDB file at {db}: run the pipeline first")
    with duckdb.connect(str(db), read_only=True) as con:
        reranked = con.sql("SELECT * FROM rankings").pl()
        naive = con.sql("SELECT * FROM naive_rankings").pl()
        page_table = con.sql("SELECT * FROM category_pages").pl()
        tree = Taxonomy.from_nodes(con.sql("SELECT * FROM taxonomy").pl())
    truth_path = root.demo / "truth.parquet"
    truth = None
    if truth_path.exists():
        # The truth file is row-aligned with the demo catalog, bad rows included: one row per offer.
        truth = (
            pl.read_parquet(truth_path)
            .with_columns(pl.concat_str("retailer", pl.lit("|"), "product_id").alias("offer_id"))
            .drop_nulls("offer_id")
            .unique("offer_id", keep="first", maintain_order=True)
        )
    lines = [f"DuckDB file: {db}"]
    for page in _pick_pages(page_table, pages):
        lines += _side_by_side(naive, reranked, truth, tree, page, k)
    metrics: dict[str, dict[str, float]] = {}
    if truth is not None:
        metrics = {
            "naive": page_misplacement(naive, truth, tree, k),
            "reranked": page_misplacement(reranked, truth, tree, k),
        }
        lines.append(f"\nOver all {metrics['naive']['pages']} pages (demo ground truth), top {k}:")
        for name, m in metrics.items():
            lines.append(
                f"  {name:<9} pages with a misplaced product: {m[f'pages_with_misplaced@{k}']:.0%}   "
                f"misplaced share of the top {k}: {m[f'misplaced_share@{k}']:.1%}"
            )
    return Report("\n".join(lines), metrics)
