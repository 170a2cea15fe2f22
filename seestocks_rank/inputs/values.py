"""Reading a catalog's values as a feed writes them: blanks, prices with a currency or a decimal comma, integral
category ids, ISO 8601 dates, and image paths (which must stay inside the catalog's folder)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from seestocks_rank.models.images import image_problem

# ISO 8601 variants tried in order, after normalising "T" -> " " and a trailing "Z" -> "+00:00".
_AWARE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")


_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


_UTC = pl.Datetime("us", "UTC")


# Currency signs, codes and spaces a price may be written with (removed before parsing the number).
_CURRENCY = r"(?i)[\s\u00a0€$£¥₹]|\b(EUR|USD|GBP|INR|JPY)\b"


# ---------------------------------------------------------------------------- normalisation
def is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Null or isinstance(dtype, pl.Categorical | pl.Enum)


def blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Strip surrounding whitespace; empty strings become null."""
    stripped = expr.str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    """Original value as text; integral floats are rendered without a trailing ``.0``."""
    col = pl.col(column)
    if dtype.is_float():
        integral = col.is_finite() & (col == col.round())
        return pl.when(integral).then(col.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(col.cast(pl.String))
    return col.cast(pl.String)


def parse_price(column: str, dtype: pl.DataType) -> pl.Expr:
    """A float; text prices may carry a currency sign or code and use either decimal mark: ``12,50 €``,
    ``1.234,56``, ``$1,234.56``, ``EUR 9.99``. Anything else becomes null (quarantined as non-numeric)."""
    if not is_text(dtype):
        return pl.col(column).cast(pl.Float64, strict=False)
    text = blank_to_null(pl.col(column).cast(pl.String)).str.replace_all(_CURRENCY, "")
    normalised = (
        pl.when(text.str.contains(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$"))  # 1.234,56: dots group thousands
        .then(text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
        .when(text.str.contains(r"^[-+]?\d+,\d{1,2}$"))  # 12,5 / 12,50: a decimal comma
        .then(text.str.replace(",", ".", literal=True))
        .when(text.str.contains(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$"))  # 1,234.56: commas group thousands
        .then(text.str.replace_all(",", "", literal=True))
        .otherwise(text)
    )
    return normalised.cast(pl.Float64, strict=False)


def parse_category(column: str, dtype: pl.DataType) -> pl.Expr:
    """Integer category id, or null when missing or not integral."""
    col = pl.col(column)
    if dtype.is_integer():
        return col.cast(pl.Int64, strict=False)
    as_float = col.cast(pl.Float64, strict=False)
    if is_text(dtype):
        text = blank_to_null(col.cast(pl.String))
        as_float = text.cast(pl.Float64, strict=False)
        exact = text.cast(pl.Int64, strict=False)
    else:
        exact = pl.lit(None, dtype=pl.Int64)
    integral = as_float.is_finite() & (as_float == as_float.round()) & (as_float.abs() < 2.0**53)
    return pl.coalesce(exact, pl.when(integral).then(as_float.cast(pl.Int64, strict=False)))


def parse_last_seen(column: str, dtype: pl.DataType) -> pl.Expr:
    """UTC timestamp; naive values are taken as UTC, unparseable values become null."""
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return col.dt.replace_time_zone("UTC").cast(_UTC)
        return col.dt.convert_time_zone("UTC").cast(_UTC)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    text = (
        blank_to_null(col.cast(pl.String))
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt]", "$1 ")
        .str.replace(r"[Zz]$", "+00:00")
    )
    aware = [text.str.to_datetime(f, strict=False, time_unit="us").cast(_UTC) for f in _AWARE_FORMATS]
    naive = [text.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC") for f in _NAIVE_FORMATS]
    return pl.coalesce(*aware, *naive)


def resolve_image(column: str, image_root: Path) -> pl.Expr:
    """Absolute image path: relative paths are joined onto ``image_root``."""
    path = blank_to_null(pl.col(column).cast(pl.String))
    root = str(image_root).rstrip("/") + "/"
    return pl.when(path.str.starts_with("/")).then(path).otherwise(pl.lit(root) + path)


def image_problems(paths: Iterable[str], root: Path, *, verify: bool) -> dict[str, str]:
    """The paths among ``paths`` that cannot be used as images, with the quarantine reason: outside the
    catalog's image folder (never opened, checked always), or with ``verify`` missing, not a regular
    file, too large or not decodable (checked concurrently; I/O bound)."""
    unique = sorted(set(paths))
    if not unique:
        return {}
    if not verify:
        real_root = os.path.realpath(root)
        problems = [None if Path(os.path.realpath(p)).is_relative_to(real_root) else "outside_folder" for p in unique]
    else:
        with ThreadPoolExecutor(max_workers=min(16, len(unique))) as pool:
            problems = list(pool.map(lambda p: image_problem(p, within=root), unique))
    reason = {"outside_folder": "image_outside_catalog_folder"}
    return {p: reason.get(why, "unreadable_image") for p, why in zip(unique, problems, strict=True) if why}
