"""Score a published run (its DuckDB file) against a truth file: what users of the pages would see.

The truth file (CSV or Parquet) names each product's true category: ``product_id`` (with ``retailer`` when
ids repeat across retailers) or ``offer_id``, and ``true_category_id``; optionally ``cluster_id``, the
product an offer is an offer of (offers of one cluster are duplicates of each other). Products the truth
file does not name are left out of every figure.

Per page, for the reranked pages (``rankings``) and the naive ones (``naive_rankings``: tagged products,
cheapest first), each truncated at ``k``:

* ``pages_misplaced@k``: share of pages with a product in the top ``k`` whose true category is not the page's
  category or below it;
* ``coverage@k``: correctly tagged products shown in the top ``k`` / the correctly tagged products that fit
  (at most ``k``), averaged over pages (with ``cluster_id``, counted in clusters);
* ``duplicate_slots@k``: share of top-``k`` slots taken by a second offer of a cluster already above;
* ``max_retailer_share@k``: the largest share of the top ``k`` one retailer holds, averaged over pages;
* ``shown@k``: products in the top ``k``, averaged over pages.

Also, for reference, each single signal's pages (``single_signals``): every candidate of the page
(``filtered_rankings``) ordered by one signal alone, with no filter, rule or ranker, and which of them does
best on the scored pages (``best_single_signal``: chosen on the very pages it is scored on, so an upper
bound for one signal).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.files import read_table
from seestocks_rank.inputs.pages import load_category_pages
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.centroids import ancestor_pairs, tagged_products

__all__ = ["load_truth", "score_pages", "score_run"]

_RANKINGS = {"pipeline": "rankings", "naive": "naive_rankings"}

# one signal alone orders a page's candidates: True, higher first; False, lower first
SINGLE_SIGNALS = {
    "retrieval_rank": False,
    "centroid_cosine": True,
    "prompt_cosine": True,
    "name_match": True,
    "cross_encoder_score": True,
    "visual_similarity": True,
    "taxonomy_distance": False,
}


def single_signal_pages(candidates: pl.DataFrame, signal: str, higher_first: bool) -> pl.DataFrame:
    """``category_id, offer_id, retailer, rank``: each page's candidates ordered by ``signal`` alone (nulls
    last, ties by offer id)."""
    ordered = candidates.sort(
        "category_id", signal, "offer_id", descending=[False, higher_first, False], nulls_last=True
    )
    return ordered.select(
        "category_id", "offer_id", "retailer", pl.int_range(1, pl.len() + 1).over("category_id").alias("rank")
    )


def load_truth(path: str | Path, catalog: pl.DataFrame) -> pl.DataFrame:
    """``offer_id, true_category_id, cluster_id`` for the catalog's offers the truth file names; raises
    :class:`InputError` naming a missing column or the first row whose category is not a number."""
    raw = read_table(path)
    if "offer_id" in raw.columns:
        keys = ["offer_id"]
    elif "product_id" in raw.columns:  # one id for every retailer's offer of it unless retailer is given
        keys = ["product_id", *(["retailer"] if "retailer" in raw.columns else [])]
    else:
        raise InputError(f"{path}: missing column 'product_id' (or 'offer_id'): which product each row is about")
    if "true_category_id" not in raw.columns:
        raise InputError(f"{path}: missing column 'true_category_id'")
    typed = raw.with_columns(
        *[pl.col(k).cast(pl.Utf8).str.strip_chars() for k in keys],
        pl.col("true_category_id").cast(pl.Utf8).str.strip_chars().cast(pl.Int64, strict=False).alias("_category"),
    )
    bad = typed.with_row_index("_row").filter(pl.col("_category").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(f"{path}: row {row['_row'] + 1}: true_category_id {row['true_category_id']!r} is not an id")
    cluster = pl.col("cluster_id").cast(pl.Utf8) if "cluster_id" in raw.columns else pl.lit(None, pl.Utf8)
    named = typed.select(*keys, pl.col("_category").alias("true_category_id"), cluster.alias("cluster_id"))
    offers = catalog.select("offer_id", *[k for k in keys if k != "offer_id"])
    return offers.join(named.unique(keys, keep="last"), on=keys, how="inner").select(
        "offer_id", "true_category_id", pl.coalesce("cluster_id", "offer_id").alias("cluster_id")
    )


def score_pages(
    shown: pl.DataFrame,
    tagged: pl.DataFrame,
    truth: pl.DataFrame,
    closure: pl.DataFrame,
    pages: pl.Series,
    k: int,
) -> dict[str, float]:
    """The figures of one ranking at ``k``.

    ``shown``: ``category_id, offer_id, retailer, rank``; ``tagged``: ``category_id, offer_id`` (each page's
    tagged products, its category and below); ``truth`` as :func:`load_truth` returns; ``closure``:
    ``category_id, ancestor_id`` (each category with itself and its ancestors); ``pages``: the page ids.
    """
    fits = closure.select(pl.col("category_id").alias("true_category_id"), pl.col("ancestor_id").alias("page"))
    top = (
        shown.filter(pl.col("rank") <= k)
        .join(truth, on="offer_id", how="left")
        .join(
            fits.with_columns(pl.lit(True).alias("belongs")),
            how="left",
            left_on=["true_category_id", "category_id"],
            right_on=["true_category_id", "page"],
        )  # fmt: skip
        .with_columns(pl.col("belongs").fill_null(False))
        .sort("category_id", "rank")
    )
    known = pl.col("true_category_id").is_not_null()
    correct = (
        tagged.join(truth, on="offer_id", how="inner")
        .join(fits, left_on=["true_category_id", "category_id"], right_on=["true_category_id", "page"], how="semi")
        .select("category_id", "cluster_id")
        .unique()
    )
    per_page = (
        pl.DataFrame({"category_id": pages.unique()})
        .join(
            top.group_by("category_id").agg(
                (known & pl.col("belongs").not_()).any().alias("misplaced"),
                pl.len().alias("shown"),
                (pl.len() - pl.col("cluster_id").drop_nulls().n_unique() - pl.col("cluster_id").null_count()).alias(
                    "second_offers"
                ),
            ),
            on="category_id",
            how="left",
        )
        .join(
            top.group_by("category_id", "retailer")
            .len()
            .group_by("category_id")
            .agg((pl.col("len").max() / pl.col("len").sum()).alias("max_retailer_share")),
            on="category_id",
            how="left",
        )  # fmt: skip
        .join(
            top.filter(pl.col("belongs"))
            .join(correct, on=["category_id", "cluster_id"], how="semi")
            .group_by("category_id")
            .agg(pl.col("cluster_id").n_unique().alias("correct_shown")),
            on="category_id",
            how="left",
        )  # fmt: skip
        .join(correct.group_by("category_id").agg(pl.len().alias("correct_total")), on="category_id", how="left")
        .with_columns(pl.col("shown", "second_offers", "correct_shown", "correct_total").fill_null(0))
    )
    with_products = per_page.filter(pl.col("correct_total") > 0)
    coverage = with_products.select(
        (pl.col("correct_shown") / pl.min_horizontal(pl.col("correct_total"), pl.lit(k))).mean()
    ).item()
    return {
        f"pages_misplaced@{k}": per_page.select(pl.col("misplaced").fill_null(False).mean()).item(),
        f"coverage@{k}": coverage,
        f"duplicate_slots@{k}": per_page["second_offers"].sum() / max(per_page["shown"].sum(), 1),
        f"max_retailer_share@{k}": per_page.select(pl.col("max_retailer_share").mean()).item(),
        f"shown@{k}": per_page.select(pl.col("shown").mean()).item(),
    }


def score_run(
    duckdb_path: str | Path,
    truth_path: str | Path,
    ks: tuple[int, ...] = (10, 50),
    pages_path: str | Path | None = None,
) -> dict[str, object]:
    """Every figure of :func:`score_pages`, for the pipeline's and the naive pages of the published run in
    ``duckdb_path``, against the truth file at ``truth_path``; only the pages listed in ``pages_path``
    (a ``category_id`` column, e.g. the pages never judged) when given."""
    if not Path(duckdb_path).is_file():
        raise InputError(f"{duckdb_path}: no published run (run `seestocks-rank run` first)")
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        catalog = con.sql("select offer_id, product_id, retailer, category_id from catalog").pl()
        taxonomy = Taxonomy.from_nodes(con.sql("select category_id, name, path, parent_id, depth from taxonomy").pl())
        pages = con.sql("select category_id from category_pages").pl().get_column("category_id")
        runs = con.sql("select run_id from runs order by published_at desc limit 1").pl()
        rankings = {
            name: con.sql(f"select category_id, offer_id, retailer, rank from {table}").pl()  # noqa: S608
            for name, table in _RANKINGS.items()
        }
        available = {row[0] for row in con.execute("describe filtered_rankings").fetchall()}
        wanted = [c for c in ("category_id", "offer_id", "retailer", *SINGLE_SIGNALS) if c in available]
        candidates = con.sql(f"select {', '.join(wanted)} from filtered_rankings").pl()  # noqa: S608
    if pages_path is not None:
        pages = pages.filter(pages.is_in(load_category_pages(pages_path, taxonomy).get_column("category_id").implode()))
    truth = load_truth(truth_path, catalog)
    tagged = tagged_products(catalog, pages.to_frame(), taxonomy)
    closure = ancestor_pairs(taxonomy)
    result: dict[str, object] = {
        "run_id": runs.get_column("run_id")[0] if runs.height else None,
        "pages": pages.len(),
        "catalog_offers": catalog.height,
        "offers_with_truth": truth.height,
    }

    def figures(shown: pl.DataFrame) -> dict[str, float | None]:
        out: dict[str, float] = {}
        for k in ks:
            out |= score_pages(shown, tagged, truth, closure, pages, k)
        return {key: round(value, 4) if value is not None else None for key, value in out.items()}

    for name, shown in rankings.items():
        result[name] = figures(shown)
    singles = {
        signal: figures(single_signal_pages(candidates, signal, higher_first))
        for signal, higher_first in SINGLE_SIGNALS.items()
        if signal in candidates.columns and candidates.get_column(signal).null_count() < candidates.height
    }
    if singles:
        first = f"pages_misplaced@{ks[0]}"
        result["best_single_signal"] = min(
            singles, key=lambda s: (singles[s][first], -(singles[s][f"coverage@{ks[-1]}"] or 0))
        )
        result["single_signals"] = singles
    return result
