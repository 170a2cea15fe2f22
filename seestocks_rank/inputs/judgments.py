"""Human relevance judgments: ``category_id, product_id, grade`` (any numeric grade scale)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from seestocks_rank.inputs.files import read_table

if TYPE_CHECKING:
    pass


JUDGMENT_COLUMNS = ("category_id", "product_id", "grade")


def load_judgments(path: str | Path) -> pl.DataFrame:
    """Read and type a judgments file; raises naming a missing column or the first bad row."""
    raw = read_table(path)
    missing = [c for c in JUDGMENT_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: judgments lack column(s) {missing}; expected {list(JUDGMENT_COLUMNS)}")
    typed = raw.select(
        pl.col("category_id").cast(pl.Utf8).str.strip_chars().cast(pl.Int64, strict=False),
        pl.col("product_id").cast(pl.Utf8).str.strip_chars(),
        pl.col("grade").cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False),
    )
    raise_on_null(raw, typed, JUDGMENT_COLUMNS, path)
    return typed.unique(subset=["category_id", "product_id"], keep="last", maintain_order=True)


def raise_on_null(raw: pl.DataFrame, typed: pl.DataFrame, columns: tuple[str, ...], path: str | Path) -> None:
    """Raise naming the first row whose required value is missing or failed to parse (``typed`` is ``raw``
    after casting, row-aligned)."""
    for column in columns:
        bad = typed.get_column(column).is_null()
        if bad.any():
            row = int(bad.arg_max())
            raise ValueError(f"{path}: row {row} has a missing or non-numeric {column} ({raw[column][row]!r})")


def judged_pairs(judgments: pl.DataFrame, products: pl.DataFrame, page_ids: pl.Series) -> pl.DataFrame:
    """(category_id, offer_id, grade) for judgments on active pages; a product id offered by several
    retailers yields one pair per offer."""
    return (
        judgments.filter(pl.col("category_id").is_in(page_ids.implode()))
        .join(products.select("offer_id", "product_id"), on="product_id", how="inner")
        .select("category_id", "offer_id", "grade")
    )


REQUIRED = ("query_id", "query", "product_id", "title", "grade")


OPTIONAL = ("description", "price", "retailer", "category_path", "image_path")


def load_eval_judgments(path: str | Path) -> pl.DataFrame:
    """Read and type a judgments file; raises naming a missing column or the first bad row."""
    raw = read_table(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: judgments lack column(s) {missing}; expected {list(REQUIRED)} (+ {list(OPTIONAL)})")
    typed = raw.select(
        pl.col("query_id").cast(pl.Utf8),
        pl.col("query").cast(pl.Utf8),
        pl.col("product_id").cast(pl.Utf8),
        pl.col("title").cast(pl.Utf8),
        pl.col("grade").cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False),
        *(pl.col(c).cast(pl.Utf8) for c in OPTIONAL if c in raw.columns and c != "price"),
        *([pl.col("price").cast(pl.Utf8).cast(pl.Float64, strict=False)] if "price" in raw.columns else []),
    )
    raise_on_null(raw, typed, REQUIRED, path)
    return typed.unique(["query_id", "product_id"], keep="first", maintain_order=True)
