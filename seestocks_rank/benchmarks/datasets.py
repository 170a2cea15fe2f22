"""Adapters from public data sets to the project's file formats."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.splits import hash_split

# Home Depot grades (1-3, mean of raters): relevant >= 2.5, irrelevant < 1.5 (../shared/data/README.md)
HOMEDEPOT_RELEVANT_MIN, HOMEDEPOT_IRRELEVANT_MAX = 2.5, 1.49


def homedepot_judgments(path: str | Path) -> pl.DataFrame:
    """Home Depot's ``train.csv(.zip)`` (latin-1) -> the judgments format
    ``query_id, query, product_id, title, grade, split``. A query is the lower-cased, stripped search term;
    its id is stable (a hash of the text)."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".csv"))
            raw = archive.read(name).decode("latin-1")
    else:
        raw = path.read_bytes().decode("latin-1")
    df = pl.read_csv(io.StringIO(raw), infer_schema=False)
    missing = {"product_uid", "product_title", "search_term", "relevance"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: not a Home Depot judgments file, missing {sorted(missing)}")
    queries = df.get_column("search_term").str.to_lowercase().str.strip_chars()
    distinct = queries.unique()
    # The fixed split of ../shared/data/README.md: TEST when md5(query) % 5 == 0 (one md5 per distinct query).
    split = dict(zip(distinct.to_list(), np.where(hash_split(distinct, 5) == 0, "test", "train").tolist(), strict=True))
    qid = {q: hashlib.md5(q.encode("utf-8")).hexdigest()[:12] for q in distinct.to_list()}
    return pl.DataFrame(
        {
            "query_id": queries.replace_strict(qid),
            "query": queries,
            "product_id": df.get_column("product_uid"),
            "title": df.get_column("product_title"),
            "grade": df.get_column("relevance").cast(pl.Float64),
            "split": queries.replace_strict(split),
        }
    ).unique(["query_id", "product_id"], keep="first", maintain_order=True)


REFERENCE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------- taxonomies from paths
def taxonomy_from_paths(paths: pl.Series) -> tuple[Taxonomy, dict[str, int]]:
    """A Taxonomy holding every prefix of the given ``"A > B > C"`` paths, with synthetic ids 1.. (sorted
    paths), and the path -> id map."""
    parts = paths.drop_nulls().str.split(" > ").unique()
    prefixes: set[str] = set()
    for depth in range(1, int(parts.list.len().max() or 0) + 1):  # a loop over levels
        level = parts.filter(parts.list.len() >= depth).list.head(depth).list.join(" > ")
        prefixes.update(level.to_list())
    ordered = sorted(prefixes)
    ids = {p: i + 1 for i, p in enumerate(ordered)}
    return Taxonomy.from_text("\n".join(f"{ids[p]} - {p}" for p in ordered)), ids


def clean_flipkart_paths(raw: pl.DataFrame) -> pl.DataFrame:
    """``product_id, title, brand, price, path``: Flipkart's ``>>`` path without the trailing elements that
    repeat the product's name or start with its brand (else the name's first word); products whose root is
    itself a product name are dropped."""
    df = raw.select(
        pl.col("uniq_id").alias("product_id"),
        pl.col("product_name").str.strip_chars().alias("title"),
        pl.col("brand"),
        pl.coalesce("discounted_price", "retail_price").cast(pl.Float64).alias("price"),
        pl.col("product_category_tree")
        .str.strip_chars('[]"')
        .str.split(">>")
        .list.eval(pl.element().str.strip_chars().str.replace_all(r"\s+", " ").str.replace_all(">", "-"))
        .alias("parts"),
    ).with_row_index("_r")
    title = pl.col("title").str.to_lowercase()
    el = pl.col("parts").str.to_lowercase()
    stem = el.str.replace(r"\.\.\.$", "").str.strip_chars()
    brand = pl.coalesce(pl.col("brand").str.to_lowercase().str.strip_chars(), title.str.extract(r"^(\S+)"))
    long = df.explode("parts").with_columns(pl.int_range(pl.len()).over("_r").alias("_i"))
    product_level = (
        pl.when(pl.col("_i") > 0)
        .then(
            title.str.starts_with(stem)
            | stem.str.starts_with(title)
            | (el.str.starts_with(brand + " ") | (el == brand))
            | el.str.contains("...", literal=True)
        )
        .otherwise(  # a root that is itself a (truncated) product name: the product has no category
            el.str.contains("...", literal=True) | (title.str.starts_with(stem) & (stem.str.len_chars() > 30))
        )
    )
    long = long.with_columns(product_level.fill_null(False).alias("_drop"))
    last_kept = long.filter(~pl.col("_drop")).group_by("_r").agg(pl.col("_i").max().alias("_last"))
    kept = (
        long.join(last_kept, on="_r")
        .filter(pl.col("_i") <= pl.col("_last"))
        .group_by("_r", maintain_order=True)
        .agg(pl.col("parts").str.join(" > ").alias("path"))
    )
    return (
        df.join(kept, on="_r", how="left")
        .filter(pl.col("path").is_not_null() & (pl.col("path") != "") & pl.col("title").is_not_null())
        .select("product_id", "title", "brand", "price", "path")
    )


def catalog_frame(df: pl.DataFrame, path_ids: dict[str, int], retailer: str, currency: str) -> pl.DataFrame:
    """Raw rows in the pipeline's catalog contract from ``product_id, title, price, path`` rows."""
    return df.select(
        pl.col("product_id").cast(pl.String),
        pl.col("title"),
        pl.lit(retailer).alias("retailer"),
        pl.col("price").cast(pl.String),
        pl.lit(currency).alias("currency"),
        pl.col("path").replace_strict(path_ids, return_dtype=pl.Int64).cast(pl.String).alias("category_id"),
        pl.lit(REFERENCE_TIME.isoformat()).alias("last_seen"),
    )


# ---------------------------------------------------------------------------- public data loaders
def load_flipkart(path: str | Path) -> tuple[pl.DataFrame, Taxonomy]:
    """The Flipkart sample as raw catalog rows (pipeline contract, INR) and its cleaned-path taxonomy."""
    clean = clean_flipkart_paths(pl.read_csv(path, infer_schema_length=10_000))
    taxonomy, ids = taxonomy_from_paths(clean.get_column("path"))
    return catalog_frame(clean, ids, "flipkart", "INR"), taxonomy


def load_fashion(path: str | Path) -> tuple[pl.DataFrame, Taxonomy]:
    """The fashion catalog as ``product_id, title, category_id`` on ``masterCategory > subCategory > articleType``."""
    raw = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True)
    df = raw.select(
        pl.col("id").alias("product_id"),
        pl.col("productDisplayName").str.strip_chars().alias("title"),
        pl.concat_str(
            [
                pl.col(c).str.strip_chars().str.replace_all(">", "-")
                for c in ("masterCategory", "subCategory", "articleType")
            ],
            separator=" > ",
        ).alias("path"),
    ).filter(pl.col("title").is_not_null() & (pl.col("title") != "") & pl.col("path").is_not_null())
    taxonomy, ids = taxonomy_from_paths(df.get_column("path"))
    return df.with_columns(pl.col("path").replace_strict(ids, return_dtype=pl.Int64).alias("category_id")), taxonomy


def load_pricerunner(path: str | Path) -> pl.DataFrame:
    """PriceRunner offers in the dedup format: ``product_id, title, retailer, price`` (null), ``cluster_id, block``."""
    raw = pl.read_csv(path)
    raw = raw.rename({c: c.strip() for c in raw.columns})
    return raw.select(
        pl.col("product_id").cast(pl.String),
        pl.col("product_title").alias("title"),
        pl.col("vendor_id").cast(pl.String).alias("retailer"),
        pl.lit(None, pl.Float64).alias("price"),
        pl.col("cluster_id").cast(pl.String),
        pl.col("category_label").alias("block"),
    )


def load_matching(folder: str | Path) -> dict[str, pl.DataFrame]:
    """A DeepMatcher benchmark: ``tableA``/``tableB`` as ``id, title, brand, price`` (``brand`` from a brand or
    manufacturer column, else null) and ``train/valid/test`` pairs."""
    folder = Path(folder)
    out: dict[str, pl.DataFrame] = {}
    for name in ("tableA", "tableB"):
        t = pl.read_csv(folder / f"{name}.csv", infer_schema=False)
        title = "title" if "title" in t.columns else "name"
        out[name] = t.select(
            pl.col("id").cast(pl.Int64),
            pl.col(title).fill_null("").str.strip_chars().alias("title"),
            next(
                (pl.col(c).str.strip_chars() for c in ("brand", "manufacturer") if c in t.columns),
                pl.lit(None, pl.String),
            ).alias("brand"),
            pl.col("price").str.replace_all(r"[^0-9.]", "").cast(pl.Float64, strict=False).alias("price"),
        )
    for split in ("train", "valid", "test"):
        out[split] = pl.read_csv(folder / f"{split}.csv").select(
            pl.col("ltable_id").cast(pl.Int64), pl.col("rtable_id").cast(pl.Int64), pl.col("label").cast(pl.Int64)
        )
    return out
