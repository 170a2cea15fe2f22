"""A labelled public catalog turned into the inputs a user gives ``seestocks-rank run``, plus the truth that
``seestocks-rank score`` reads: so figures labelled "pipeline" come from a real run, not a component.

From a catalog whose ``category_id`` is the truth and its taxonomy, :func:`write_run_inputs` writes
``catalog.csv`` (with a seeded share of wrong tags, see :func:`~seestocks_rank.benchmarks.mistag.inject_noise`),
``taxonomy.txt``, ``category_pages.csv`` (the nodes down to ``max_depth`` with enough products),
``judgments.csv`` (graded tagged products of a seeded share of the pages: 1 belongs, 0 does not),
``truth.csv`` (``product_id, retailer, true_category_id``) and ``scored_pages.csv`` (the pages never
judged: score on those).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.mistag import inject_noise, select_pages
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.centroids import page_members

__all__ = ["add_run_inputs_parser", "write_run_inputs"]


def write_run_inputs(
    catalog: pl.DataFrame,
    taxonomy: Taxonomy,
    out: str | Path,
    *,
    max_depth: int = 2,
    min_products: int = 30,
    mistag_rate: float = 0.1,
    judged_share: float = 0.4,
    seed: int = 7,
) -> dict[str, object]:
    """Write the run's inputs and truth to ``out``; returns counts of what was written.

    ``catalog``: the pipeline's catalog columns (``product_id, title, retailer, price, category_id, ...``),
    ``category_id`` the true category; an optional ``cluster_id`` (which product an offer is) goes to the
    truth only.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    true = catalog.get_column("category_id").cast(pl.Int64).to_numpy()
    top = taxonomy.nodes.filter(pl.col("depth") <= max_depth).select("category_id")
    pages = select_pages(taxonomy, true, min_products=min_products).join(top, on="category_id", how="semi")
    page_ids = pages.get_column("category_id").to_numpy()
    assigned, noisy = inject_noise(true, taxonomy, page_ids, mistag_rate, seed)
    truth_columns = [c for c in ("cluster_id",) if c in catalog.columns]  # the truth's, not the catalog's
    tagged = catalog.drop(truth_columns).with_columns(pl.Series("category_id", assigned).cast(pl.String))
    rng = np.random.default_rng(seed)
    judged = np.sort(rng.permutation(page_ids)[: int(round(judged_share * len(page_ids)))])
    judged_rows = _judged_rows(pl.DataFrame({"category_id": assigned}), judged, taxonomy, rng)
    rows = judged_rows.get_column("row").to_numpy()
    grades = taxonomy.is_within(true[rows], judged_rows.get_column("category_id").to_numpy()).astype(float)
    judgments = pl.DataFrame(
        {
            "category_id": judged_rows.get_column("category_id"),
            "product_id": catalog.get_column("product_id").gather(rows),
            "grade": grades,
        }
    )
    truth = catalog.select("product_id", "retailer", pl.Series("true_category_id", true), *truth_columns)
    tagged.write_csv(out / "catalog.csv")
    (out / "taxonomy.txt").write_text(taxonomy.to_text())
    pages.write_csv(out / "category_pages.csv")
    judgments.write_csv(out / "judgments.csv")
    truth.write_csv(out / "truth.csv")
    pages.filter(~pl.col("category_id").is_in(judged.tolist())).write_csv(out / "scored_pages.csv")
    return {
        "products": catalog.height,
        "mistagged": int(noisy.sum()),
        "pages": len(page_ids),
        "judged_pages": len(judged),
        "judgments": judgments.height,
        "scored_pages": len(page_ids) - len(judged),
        "folder": str(out),
    }


def _judged_rows(tags: pl.DataFrame, judged: np.ndarray, taxonomy: Taxonomy, rng: np.random.Generator) -> pl.DataFrame:
    """``category_id, row``: what a rater grades on each judged page. Its tagged products, plus half as many
    from around it (tagged under its parent, not under it) and a quarter as many from anywhere: a ranker
    trained on tagged products alone never learns that a product from elsewhere can be wrong."""
    pages = pl.DataFrame({"category_id": judged})
    own = page_members(tags, pages, taxonomy)
    counts = own.group_by("category_id").agg((pl.len() // 2).alias("near"), (pl.len() // 4).alias("far"))
    parents = pages.join(taxonomy.nodes.select("category_id", "parent_id"), on="category_id").drop_nulls()
    around = (
        page_members(tags, parents.select(pl.col("parent_id").alias("category_id")).unique(), taxonomy)
        .rename({"category_id": "parent_id"})
        .join(parents, on="parent_id")
        .select("category_id", "row")
        .join(own, on=["category_id", "row"], how="anti")
        .join(counts, on="category_id")
        .filter(pl.int_range(pl.len()).shuffle(seed=int(rng.integers(2**31))).over("category_id") < pl.col("near"))
        .select("category_id", "row")
    )
    far_counts = counts.get_column("far").to_numpy()
    anywhere = pl.DataFrame(
        {
            "category_id": np.repeat(counts.get_column("category_id").to_numpy(), far_counts),
            "row": rng.integers(0, tags.height, int(far_counts.sum())),
        }
    )
    return pl.concat([own, around, anywhere.join(own, on=["category_id", "row"], how="anti")]).unique(
        ["category_id", "row"], maintain_order=True
    )


def cmd_run_inputs(args: argparse.Namespace) -> int:
    """``seestocks-rank bench run-inputs``: write a public catalog as run inputs (one JSON object)."""
    from seestocks_rank.benchmarks.datasets import REFERENCE_TIME, load_fashion, load_flipkart

    if args.source == "flipkart":
        catalog, taxonomy = load_flipkart(args.path)
    elif args.source == "pricerunner":
        catalog, taxonomy = pricerunner_catalog(args.path, seed=args.seed)
    else:
        fashion, taxonomy = load_fashion(args.path)
        catalog = fashion.select(
            pl.col("product_id").cast(pl.String),
            "title",
            pl.lit("fashion").alias("retailer"),
            pl.lit("1").alias("price"),
            pl.lit("INR").alias("currency"),
            pl.col("category_id").cast(pl.String),
            pl.lit(REFERENCE_TIME.isoformat()).alias("last_seen"),
        )
    if args.images:
        catalog = with_photos(catalog, Path(args.images), Path(args.out), text_only=args.text_only)
    summary = write_run_inputs(
        catalog,
        taxonomy,
        args.out,
        max_depth=args.max_depth,
        min_products=args.min_products,
        mistag_rate=args.noise,
        judged_share=args.judged_share,
        seed=args.seed,
    )
    print(json.dumps({"source": args.source, **summary}))
    return 0


def pricerunner_catalog(path: str | Path, *, seed: int = 7) -> tuple[pl.DataFrame, Taxonomy]:
    """PriceRunner's offers as a multi-retailer catalog (a merchant is a retailer; its 10 categories are the
    taxonomy) with ``cluster_id`` for the truth. PriceRunner publishes no prices, so each offer gets a
    synthetic one: a seeded log-normal price per cluster, each merchant within +-10% of it (so the dedup's
    price condition is exercised as on real offers; figures that depend on prices are not PriceRunner's)."""
    from seestocks_rank.benchmarks.datasets import REFERENCE_TIME, load_pricerunner, taxonomy_from_paths

    offers = load_pricerunner(path)
    taxonomy, ids = taxonomy_from_paths(offers.get_column("block").str.replace_all(">", "-"))
    rng = np.random.default_rng(seed)
    clusters = offers.get_column("cluster_id").unique().sort()
    base = pl.DataFrame({"cluster_id": clusters, "_base": np.exp(rng.normal(4.0, 1.2, len(clusters)))})
    priced = offers.join(base, on="cluster_id", how="left", maintain_order="left").with_columns(
        (pl.col("_base") * pl.Series(rng.uniform(0.9, 1.1, offers.height))).round(2).alias("price")
    )
    catalog = priced.select(
        "product_id",
        "title",
        "retailer",
        pl.col("price").cast(pl.String),
        pl.lit("EUR").alias("currency"),
        pl.col("block").str.replace_all(">", "-").replace_strict(ids, return_dtype=pl.Int64).cast(pl.String)
        .alias("category_id"),
        pl.lit(REFERENCE_TIME.isoformat()).alias("last_seen"),
        "cluster_id",
    )  # fmt: skip
    return catalog, taxonomy


def with_photos(catalog: pl.DataFrame, images: Path, out: Path, *, text_only: bool = False) -> pl.DataFrame:
    """The products that have a photo ``<product_id>.jpg`` in ``images``, with ``image_path`` pointing at a
    copy under ``out/images/`` (a catalog's images live in its folder). ``text_only``: the same products
    without the column, to measure what the photos add on the same pages and mis-tags."""
    import shutil

    have = {p.stem for p in images.glob("*.jpg")}
    kept = catalog.filter(pl.col("product_id").is_in(sorted(have)))
    if kept.height == 0:
        raise ValueError(f"no <product_id>.jpg photo in {images} matches a product")
    if text_only:
        return kept
    (out / "images").mkdir(parents=True, exist_ok=True)
    for product in kept.get_column("product_id").to_list():
        shutil.copyfile(images / f"{product}.jpg", out / "images" / f"{product}.jpg")
    return kept.with_columns(("images/" + pl.col("product_id") + ".jpg").alias("image_path"))


def add_run_inputs_parser(bench: argparse._SubParsersAction) -> None:
    """Register ``run-inputs`` under the ``bench`` subcommand group."""
    p = bench.add_parser("run-inputs", help="a public catalog as run inputs with mis-tags, judgments and truth")
    p.add_argument("--source", choices=("flipkart", "fashion", "pricerunner"), required=True, help="which catalog")
    p.add_argument(
        "--path", required=True, help="its file (flipkart_20k_joined.csv.gz, styles.csv.gz, pricerunner_aggregate.csv)"
    )
    p.add_argument("--out", required=True, help="folder for the inputs and the truth")
    p.add_argument("--max-depth", type=int, default=2, help="pages are the taxonomy's nodes down to this depth")
    p.add_argument("--min-products", type=int, default=30, help="a page needs this many products")
    p.add_argument("--noise", type=float, default=0.1, help="share of products given a wrong tag")
    p.add_argument("--judged-share", type=float, default=0.4, help="share of pages with judgments")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--images", help="fashion: keep the products with a photo <id>.jpg in this folder, with image_path")
    p.add_argument("--text-only", action="store_true", help="with --images: the same products, no image_path")
    p.set_defaults(func=cmd_run_inputs)
