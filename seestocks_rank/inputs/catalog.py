"""Catalog loading: schema contract, vectorised row validation and quarantine of bad rows.

A catalog is a Parquet or CSV table with one row per retailer offer. :func:`load_catalog` reads it,
checks the column contract (raising :class:`CatalogSchemaError` for schema problems) and splits the
rows into clean ``products`` (exact dtypes, keyed by ``offer_id``) and a ``quarantine`` table that
keeps every bad row's original values as text together with the reason(s) it was rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.files import read_table
from seestocks_rank.inputs.values import (
    as_text,
    blank_to_null,
    image_problems,
    is_text,
    parse_category,
    parse_last_seen,
    parse_price,
    resolve_image,
)

__all__ = [
    "MAX_TITLE_CHARS",
    "MIN_TITLE_CHARS",
    "OPTIONAL_COLUMNS",
    "PRODUCT_SCHEMA",
    "QUARANTINE_REASONS",
    "REQUIRED_COLUMNS",
    "CatalogLoad",
    "CatalogSchemaError",
    "load_catalog",
    "read_table",
    "validate_catalog",
]


REQUIRED_COLUMNS: tuple[str, ...] = (
    "product_id",
    "title",
    "retailer",
    "price",
    "currency",
    "category_id",
    "last_seen",
)


OPTIONAL_COLUMNS: tuple[str, ...] = ("image_path", "description", "brand")


CONTRACT_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


MAX_TITLE_CHARS = 400


MIN_TITLE_CHARS = 3


MAX_PRICE = 1e9  # in any currency: a larger price is a feed error, not an offer


PRODUCT_SCHEMA: dict[str, pl.DataType] = {
    "offer_id": pl.String(),
    "product_id": pl.String(),
    "title": pl.String(),
    "retailer": pl.String(),
    "price": pl.Float64(),
    "currency": pl.String(),
    "category_id": pl.Int64(),
    "image_path": pl.String(),
    "last_seen": pl.Datetime("us", "UTC"),
    "description": pl.String(),
    "brand": pl.String(),
}


QUARANTINE_REASONS: tuple[str, ...] = (
    "missing_product_id",
    "missing_title",
    "absurd_title_length",
    "non_numeric_price",
    "non_positive_price",
    "implausible_price",
    "missing_retailer",
    "missing_currency",
    "unknown_category",
    "bad_last_seen",
    "unreadable_image",
    "image_outside_catalog_folder",
    "duplicate_offer",
)


REASON_SEPARATOR = "; "


class CatalogSchemaError(InputError):
    """The catalog violates the column contract; the message names each offending column."""


@dataclass(frozen=True, eq=False)
class CatalogLoad:
    """Result of validating a catalog: clean ``products`` and rejected rows in ``quarantine``."""

    products: pl.DataFrame
    quarantine: pl.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        """Row counts: ``rows``, ``products``, ``quarantined`` and ``quarantined.<reason>`` per reason."""
        per_reason = dict.fromkeys(QUARANTINE_REASONS, 0)
        if self.quarantine.height:
            reasons = self.quarantine["reason"].str.split(REASON_SEPARATOR).explode()
            per_reason.update(reasons.value_counts().iter_rows())
        kept = int(self.quarantine["kept_without_image"].sum()) if self.quarantine.height else 0
        counts = {
            "rows": self.products.height + self.quarantine.height - kept,
            "products": self.products.height,
            "quarantined": self.quarantine.height - kept,
            "kept_without_image": kept,
        }
        counts.update({f"quarantined.{reason}": int(n) for reason, n in per_reason.items()})
        return counts


def _is_numeric_or_text(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or is_text(dtype)


def _is_temporal_or_text(dtype: pl.DataType) -> bool:
    return dtype == pl.Date or isinstance(dtype, pl.Datetime) or is_text(dtype)


def _is_integer_or_text(dtype: pl.DataType) -> bool:
    return dtype.is_integer() or is_text(dtype)


_DTYPE_RULES: dict[str, tuple[Callable[[pl.DataType], bool], str]] = {
    "product_id": (_is_numeric_or_text, "a string or integer column"),
    "price": (_is_numeric_or_text, "a numeric or string column"),
    "category_id": (_is_numeric_or_text, "an integer or string column"),
    "last_seen": (_is_temporal_or_text, "a datetime, date or ISO 8601 string column"),
}


_TEXT_RULE = (is_text, "a string column")


def _check_schema(schema: pl.Schema) -> None:
    """Raise :class:`CatalogSchemaError` listing every missing or mistyped contract column."""
    problems = [f"required column {c!r} is missing" for c in REQUIRED_COLUMNS if c not in schema]
    for column in CONTRACT_COLUMNS:
        if column not in schema:
            continue
        accepts, expected = _DTYPE_RULES.get(column, _TEXT_RULE)
        if not accepts(schema[column]):
            problems.append(f"column {column!r} has dtype {schema[column]}; expected {expected}")
    if problems:
        raise CatalogSchemaError("; ".join(problems))


def validate_catalog(
    raw: pl.DataFrame,
    known_category_ids: np.ndarray | set[int] | Iterable[int],
    *,
    image_root: Path | None = None,
    check_images: bool = True,
    max_title_chars: int = MAX_TITLE_CHARS,
    min_title_chars: int = MIN_TITLE_CHARS,
) -> CatalogLoad:
    """Check the column contract and split ``raw`` into clean products and quarantined rows.

    Raises :class:`CatalogSchemaError` for missing or mistyped columns. Relative image paths resolve
    against ``image_root`` (default: the working directory), and an image that resolves outside it is
    refused without being opened; ``check_images`` verifies each image
    with PIL. Each quarantined row lists all of its reasons; ``duplicate_offer`` applies only to
    later occurrences among otherwise valid rows.
    """
    _check_schema(raw.schema)
    missing_optional = [c for c in OPTIONAL_COLUMNS if c not in raw.columns]
    frame = raw.select(
        *(c for c in CONTRACT_COLUMNS if c in raw.columns),
        *(pl.lit(None, dtype=pl.String).alias(c) for c in missing_optional),
    )
    schema = frame.schema
    if isinstance(known_category_ids, np.ndarray | list | tuple):
        known_ids = np.asarray(known_category_ids, dtype=np.int64).ravel()
    else:
        known_ids = np.fromiter(known_category_ids, dtype=np.int64)
    known = pl.Series("known", known_ids)
    root = Path(image_root) if image_root is not None else Path.cwd()
    root = root.resolve()

    orig = {c: as_text(c, schema[c]) for c in CONTRACT_COLUMNS}
    title = blank_to_null(orig["title"].str.replace_all(r"\s+", " "))
    frame = frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"),
        *(expr.alias(f"__orig_{c}") for c, expr in orig.items()),
        blank_to_null(orig["product_id"]).alias("product_id"),
        title.alias("title"),
        blank_to_null(orig["retailer"]).alias("retailer"),
        parse_price("price", schema["price"]).alias("price"),
        blank_to_null(orig["currency"]).str.to_uppercase().alias("currency"),
        parse_category("category_id", schema["category_id"]).alias("category_id"),
        resolve_image("image_path", root).alias("image_path"),
        parse_last_seen("last_seen", schema["last_seen"]).alias("last_seen"),
        blank_to_null(orig["description"]).alias("description"),
        blank_to_null(orig["brand"]).alias("brand"),
    )

    problems = image_problems(frame["image_path"].drop_nulls().to_list(), root, verify=check_images)
    image_reason = pl.col("image_path").replace_strict(problems, default=None, return_dtype=pl.String)

    title_len = pl.col("title").str.len_chars()
    price = pl.col("price")
    checks: dict[str, pl.Expr] = {
        "missing_product_id": pl.col("product_id").is_null(),
        "missing_title": pl.col("title").is_null(),
        "absurd_title_length": (title_len < min_title_chars) | (title_len > max_title_chars),
        "non_numeric_price": price.is_null() | ~price.is_finite(),
        "non_positive_price": price.is_finite() & (price <= 0),
        "implausible_price": price.is_finite() & (price > MAX_PRICE),
        "missing_retailer": pl.col("retailer").is_null(),
        "missing_currency": pl.col("currency").is_null(),
        "unknown_category": ~pl.col("category_id").is_in(known).fill_null(False),
        "bad_last_seen": pl.col("last_seen").is_null(),
    }
    reason = pl.concat_str(
        [pl.when(cond.fill_null(False)).then(pl.lit(name)) for name, cond in checks.items()],
        separator=REASON_SEPARATOR,
        ignore_nulls=True,
    )
    # An unusable image is not a reason to drop the product: it goes on without its image (null
    # image_path, hence a null image embedding) and the quarantine table records the bad file.
    frame = frame.with_columns(
        pl.when(reason.str.len_chars() > 0).then(reason).alias("__reason"),
        image_reason.alias("__soft"),
    )
    valid = pl.col("__reason").is_null()
    later_duplicate = valid & (pl.int_range(pl.len()).over("product_id", "retailer", valid) > 0)
    frame = frame.with_columns(
        pl.when(later_duplicate).then(pl.lit("duplicate_offer")).otherwise(pl.col("__reason")).alias("__reason")
    )

    kept = pl.col("__reason").is_null()
    products = (
        frame.filter(kept)
        .select(
            pl.concat_str("retailer", pl.lit("|"), "product_id").alias("offer_id"),
            *(pl.col(c) for c in PRODUCT_SCHEMA if c not in ("offer_id", "image_path")),
            pl.when(pl.col("__soft").is_null()).then(pl.col("image_path")).alias("image_path"),
        )
        .select(list(PRODUCT_SCHEMA))
    )
    products = products.cast(PRODUCT_SCHEMA)  # type: ignore[arg-type]
    quarantine = frame.filter(pl.col("__reason").is_not_null() | pl.col("__soft").is_not_null()).select(
        pl.col("__row").alias("source_row"),
        pl.concat_str(["__reason", "__soft"], separator=REASON_SEPARATOR, ignore_nulls=True).alias("reason"),
        kept.alias("kept_without_image"),
        *(pl.col(f"__orig_{c}").alias(c) for c in CONTRACT_COLUMNS),
    )
    return CatalogLoad(products=products, quarantine=quarantine)


def check_catalog_file(path: str | Path) -> None:
    """Raise :class:`~seestocks_rank.inputs.errors.InputError` when the catalog file is missing, unreadable
    or breaks the column contract, reading only its header (a pre-flight check before a run)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".csv":
            schema = pl.read_csv(path, n_rows=0, infer_schema=False).schema
        else:
            schema = pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable catalog ({str(exc).strip().splitlines()[0]})") from exc
    try:
        _check_schema(pl.Schema(schema))
    except CatalogSchemaError as exc:
        raise CatalogSchemaError(f"{path}: {exc}") from exc


def load_catalog(
    path: str | Path,
    known_category_ids: np.ndarray | set[int] | Iterable[int],
    *,
    image_root: Path | None = None,
    check_images: bool = True,
    max_title_chars: int = MAX_TITLE_CHARS,
    min_title_chars: int = MIN_TITLE_CHARS,
) -> CatalogLoad:
    """Read a catalog file and validate it; relative image paths resolve against its folder."""
    path = Path(path)
    raw = read_table(path)
    try:
        _check_schema(raw.schema)
    except CatalogSchemaError as exc:
        raise CatalogSchemaError(f"{path}: {exc}") from exc
    return validate_catalog(
        raw,
        known_category_ids,
        image_root=image_root if image_root is not None else path.resolve().parent,
        check_images=check_images,
        max_title_chars=max_title_chars,
        min_title_chars=min_title_chars,
    )
