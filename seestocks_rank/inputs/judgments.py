"""Human relevance judgments, in the two formats the project reads, through one loader.

* **Page judgments** (the pipeline's input, ``SEESTOCKS_JUDGMENTS``): ``category_id, product_id, grade``,
  a grade for a product on a category page.
* **Query judgments** (``seestocks-rank train`` / ``evaluate``): ``query_id, query, product_id, title,
  grade`` and optionally ``description, price, retailer, category_path, image_path``; each query stands
  for a category page's context.

Grades may be on any numeric scale. A missing column or a value that does not parse raises naming the
column and the first bad row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.files import read_table

_TEXT = pl.Utf8


@dataclass(frozen=True)
class JudgmentsFormat:
    """A judgments layout: required and optional columns with their types, the key of a judgment, and
    which of two judgments of the same key is kept."""

    required: dict[str, pl.DataType]
    key: tuple[str, ...]
    keep: Literal["first", "last"]
    optional: dict[str, pl.DataType] = field(default_factory=dict)
    id_columns: tuple[str, ...] = ("product_id",)  # whitespace around ids is not part of the id


PAGE_JUDGMENTS = JudgmentsFormat(
    required={"category_id": pl.Int64, "product_id": _TEXT, "grade": pl.Float64},
    key=("category_id", "product_id"),
    keep="last",
)
QUERY_JUDGMENTS = JudgmentsFormat(
    required={"query_id": _TEXT, "query": _TEXT, "product_id": _TEXT, "title": _TEXT, "grade": pl.Float64},
    key=("query_id", "product_id"),
    keep="first",
    optional={
        "description": _TEXT,
        "retailer": _TEXT,
        "category_path": _TEXT,
        "image_path": _TEXT,
        "price": pl.Float64,
    },  # fmt: skip
)


def _typed(column: str, dtype: pl.DataType, strip: bool) -> pl.Expr:
    text = pl.col(column).cast(pl.Utf8)
    if dtype == _TEXT:
        return text.str.strip_chars() if strip else text
    return text.str.strip_chars().cast(dtype, strict=False)


def read_judgments(path: str | Path, layout: JudgmentsFormat) -> pl.DataFrame:
    """Read and type a judgments file in ``layout``; one row per key (see :class:`JudgmentsFormat`)."""
    raw = read_table(path)
    missing = [c for c in layout.required if c not in raw.columns]
    if missing:
        expected = list(layout.required) + ([f"+ optional {list(layout.optional)}"] if layout.optional else [])
        raise InputError(f"{path}: judgments lack column(s) {missing}; expected {expected}")
    present = {**layout.required, **{c: t for c, t in layout.optional.items() if c in raw.columns}}
    typed = raw.select(_typed(c, t, c in layout.id_columns) for c, t in present.items())
    for column in layout.required:
        bad = typed.get_column(column).is_null()
        if bad.any():
            row = int(bad.arg_max())
            raise InputError(f"{path}: row {row} has a missing or non-numeric {column} ({raw[column][row]!r})")
    return typed.unique(subset=list(layout.key), keep=layout.keep, maintain_order=True)


def load_judgments(path: str | Path) -> pl.DataFrame:
    """Page judgments (``category_id, product_id, grade``); the last of duplicate judgments wins."""
    return read_judgments(path, PAGE_JUDGMENTS)


def load_query_judgments(path: str | Path) -> pl.DataFrame:
    """Query judgments (``query_id, query, product_id, title, grade`` + optional columns)."""
    return read_judgments(path, QUERY_JUDGMENTS)


def judged_pairs(judgments: pl.DataFrame, products: pl.DataFrame, page_ids: pl.Series) -> pl.DataFrame:
    """(category_id, offer_id, grade) for judgments on active pages; a product id offered by several
    retailers yields one pair per offer."""
    return (
        judgments.filter(pl.col("category_id").is_in(page_ids.implode()))
        .join(products.select("offer_id", "product_id"), on="product_id", how="inner")
        .select("category_id", "offer_id", "grade")
    )
