"""Tests for seestocks_rank.catalog."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from PIL import Image

from seestocks_rank.inputs.catalog import (
    MAX_TITLE_CHARS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    CatalogLoad,
    CatalogSchemaError,
    load_catalog,
    validate_catalog,
)
from seestocks_rank.inputs.files import read_table

KNOWN = np.array([1, 2, 3237], dtype=np.int64)
CONTRACT = list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
PRODUCT_SCHEMA = pl.Schema(
    {
        "offer_id": pl.String,
        "product_id": pl.String,
        "title": pl.String,
        "retailer": pl.String,
        "price": pl.Float64,
        "currency": pl.String,
        "category_id": pl.Int64,
        "image_path": pl.String,
        "last_seen": pl.Datetime("us", "UTC"),
        "description": pl.String,
        "brand": pl.String,
    }
)


def good_row(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "product_id": f"p{i}",
        "title": f"Product number {i}",
        "retailer": "acme",
        "price": "9.99",
        "currency": "eur",
        "category_id": "1",
        "last_seen": "2024-05-01T12:00:00Z",
    }
    row.update(overrides)
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """All-text frame, as read from CSV."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pl.DataFrame({c: [row.get(c) for row in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String))


def check_single_reason(bad: dict[str, Any], reason: str, **kwargs: Any) -> CatalogLoad:
    """Two good rows around one bad row: only the bad row is quarantined, with exactly ``reason``."""
    raw = frame([good_row(0), bad, good_row(2)])
    result = validate_catalog(raw, KNOWN, check_images=False, **kwargs)
    assert result.products["product_id"].to_list() == ["p0", "p2"]
    assert result.quarantine["source_row"].to_list() == [1]
    assert result.quarantine["reason"].to_list() == [reason]
    counts = result.counts
    assert counts["rows"] == 3 and counts["products"] == 2 and counts["quarantined"] == 1
    assert counts[f"quarantined.{reason}"] == 1
    assert sum(v for k, v in counts.items() if k.startswith("quarantined.")) == 1
    return result


# ---------------------------------------------------------------------------- happy path
def test_good_rows_are_normalised() -> None:
    raw = frame(
        [
            good_row(0, title="  Red \t shoe\n  size 42 ", currency=" usd ", price=" 12.50 "),
            good_row(1, product_id=" p1 ", last_seen="2024-05-01", brand="Acme", description="A thing"),
            good_row(2, last_seen="2024-05-01T14:00:00+02:00", category_id="3237"),
            good_row(3, last_seen="2024-05-01 12:30"),
        ]
    )
    result = validate_catalog(raw, {1, 2, 3237}, check_images=False)
    products = result.products
    assert products.schema == PRODUCT_SCHEMA
    assert result.quarantine.height == 0
    assert products["offer_id"].to_list() == ["acme|p0", "acme|p1", "acme|p2", "acme|p3"]
    assert products["title"][0] == "Red shoe size 42"
    assert products["currency"].to_list() == ["USD", "EUR", "EUR", "EUR"]
    assert products["price"][0] == 12.5
    assert products["category_id"].to_list() == [1, 1, 3237, 1]
    assert products["last_seen"].to_list() == [
        datetime(2024, 5, 1, 12, tzinfo=UTC),
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    ]
    assert products["brand"].to_list() == [None, "Acme", None, None]
    assert products["image_path"].null_count() == 4
    assert result.counts["rows"] == 4 and result.counts["quarantined.missing_title"] == 0


# ---------------------------------------------------------------------------- one test per reason
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_product_id(value: str | None) -> None:
    check_single_reason(good_row(1, product_id=value), "missing_product_id")


@pytest.mark.parametrize("value", [None, " \t "])
def test_missing_title(value: str | None) -> None:
    check_single_reason(good_row(1, title=value), "missing_title")


@pytest.mark.parametrize("value", ["ab", "x" * (MAX_TITLE_CHARS + 1)])
def test_absurd_title_length(value: str) -> None:
    check_single_reason(good_row(1, title=value), "absurd_title_length")


def test_title_length_limits_are_parameters() -> None:
    check_single_reason(good_row(1, title="Product number one"), "absurd_title_length", max_title_chars=17)


@pytest.mark.parametrize("value", [None, "", "abc", "12.5.3", "1,2,3", "inf", "nan", "-inf"])
def test_non_numeric_price(value: str | None) -> None:
    check_single_reason(good_row(1, price=value), "non_numeric_price")


@pytest.mark.parametrize("value", ["0", "-1.5", "-0,50 €"])
def test_non_positive_price(value: str) -> None:
    check_single_reason(good_row(1, price=value), "non_positive_price")


def test_implausible_price() -> None:
    check_single_reason(good_row(1, price="2e9"), "implausible_price")


@pytest.mark.parametrize(
    ("text", "price"),
    [("12,50", 12.5), ("12,5 €", 12.5), ("1.234,56", 1234.56), ("$3", 3.0), ("$1,234.56", 1234.56),
     ("EUR 9.99", 9.99), ("1 234,50", 1234.5), ("\u00a04,95\u00a0", 4.95)],
)  # fmt: skip
def test_prices_written_with_a_currency_or_a_decimal_comma_are_read(text: str, price: float) -> None:
    result = validate_catalog(frame([good_row(0, price=text)]), KNOWN, check_images=False)
    assert result.products["price"].to_list() == [pytest.approx(price)]


def test_missing_retailer() -> None:
    check_single_reason(good_row(1, retailer=" "), "missing_retailer")


def test_missing_currency() -> None:
    check_single_reason(good_row(1, currency=None), "missing_currency")


@pytest.mark.parametrize("value", [None, "999", "1.5", "abc"])
def test_unknown_category(value: str | None) -> None:
    check_single_reason(good_row(1, category_id=value), "unknown_category")


@pytest.mark.parametrize("value", [None, "", "yesterday", "2024-13-01", "01/05/2024"])
def test_bad_last_seen(value: str | None) -> None:
    check_single_reason(good_row(1, last_seen=value), "bad_last_seen")


def test_duplicate_offer_keeps_first_good_occurrence() -> None:
    raw = frame(
        [
            good_row(0, price="abc"),  # invalid first occurrence: does not count
            good_row(0, title="First good one"),
            good_row(1),
            good_row(0, title="Second good one"),
            good_row(0, retailer="other"),  # different retailer: a different offer
        ]
    )
    result = validate_catalog(raw, KNOWN, check_images=False)
    assert result.products["offer_id"].to_list() == ["acme|p0", "acme|p1", "other|p0"]
    assert result.products["title"][0] == "First good one"
    assert result.quarantine.select("source_row", "reason").rows() == [
        (0, "non_numeric_price"),
        (3, "duplicate_offer"),
    ]
    assert result.counts["quarantined.duplicate_offer"] == 1


def test_several_reasons_in_one_row() -> None:
    raw = frame([good_row(0), good_row(1, title="ab", price="-3", currency="", category_id="7")])
    result = validate_catalog(raw, KNOWN, check_images=False)
    assert result.quarantine["reason"].to_list() == [
        "absurd_title_length; non_positive_price; missing_currency; unknown_category"
    ]
    counts = result.counts
    assert counts["quarantined"] == 1
    assert counts["quarantined.unknown_category"] == 1 and counts["quarantined.missing_currency"] == 1


def test_quarantine_keeps_original_text() -> None:
    bad = good_row(1, title="  ab ", price=" abc", brand="B", image_path="x.png")
    result = validate_catalog(frame([good_row(0), bad]), KNOWN, check_images=False)
    q = result.quarantine
    assert q.columns == ["source_row", "reason", "kept_without_image", *CONTRACT]
    assert q.schema["source_row"] == pl.Int64
    assert all(q.schema[c] == pl.String for c in CONTRACT + ["reason"])
    expected = {"source_row": 1, "reason": "absurd_title_length; non_numeric_price", "kept_without_image": False}
    expected |= dict.fromkeys(OPTIONAL_COLUMNS) | bad
    assert q.row(0, named=True) == expected


# ---------------------------------------------------------------------------- images
@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(images / "ok.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    (images / "text.jpg").write_text("hello", encoding="utf-8")
    return tmp_path


def test_image_checks(image_dir: Path) -> None:
    ok_abs = str(image_dir / "images" / "ok.png")
    raw = frame(
        [
            good_row(0, image_path="images/ok.png"),
            good_row(1, image_path=ok_abs),
            good_row(2, image_path="images/corrupt.png"),
            good_row(3, image_path="images/text.jpg"),
            good_row(4, image_path="images/missing.png"),
            good_row(5, image_path=""),
            good_row(6, image_path="images/corrupt.png", price="0"),
        ]
    )
    result = validate_catalog(raw, KNOWN, image_root=image_dir)
    # a product whose image is unreadable goes on without it; the bad file is recorded in quarantine
    assert result.products["product_id"].to_list() == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert result.products["image_path"].to_list() == [ok_abs, ok_abs, None, None, None, None]
    assert result.quarantine.select("source_row", "reason", "kept_without_image").rows() == [
        (2, "unreadable_image", True),
        (3, "unreadable_image", True),
        (4, "unreadable_image", True),
        (6, "non_positive_price; unreadable_image", False),
    ]
    assert result.quarantine["image_path"][0] == "images/corrupt.png"  # the original text is kept
    assert result.counts["quarantined.unreadable_image"] == 4
    assert result.counts["kept_without_image"] == 3
    assert result.counts["quarantined"] == 1 and result.counts["rows"] == 7

    unchecked = validate_catalog(raw, KNOWN, image_root=image_dir, check_images=False)
    assert unchecked.products.height == 6
    assert unchecked.products["image_path"][2] == str(image_dir / "images" / "corrupt.png")


def test_load_catalog_resolves_images_against_catalog_folder(image_dir: Path) -> None:
    path = image_dir / "catalog.csv"
    frame([good_row(0, image_path="images/ok.png"), good_row(1, image_path="images/corrupt.png")]).write_csv(path)
    result = load_catalog(path, KNOWN)
    assert result.products["image_path"].to_list() == [str(image_dir / "images" / "ok.png"), None]
    assert result.quarantine["reason"].to_list() == ["unreadable_image"]


# ---------------------------------------------------------------------------- schema errors
def test_missing_required_columns_are_named() -> None:
    raw = frame([good_row(0)]).drop("price", "last_seen")
    with pytest.raises(CatalogSchemaError, match="price") as info:
        validate_catalog(raw, KNOWN)
    message = str(info.value)
    assert "'last_seen' is missing" in message and "'price' is missing" in message
    assert "'title'" not in message


def test_mistyped_parquet_columns_are_named(tmp_path: Path) -> None:
    raw = pl.DataFrame(
        {
            "product_id": ["p0"],
            "title": ["Product 0"],
            "retailer": ["acme"],
            "price": [True],
            "currency": ["EUR"],
            "category_id": [1],
            "last_seen": [[1, 2]],
            "brand": [3.5],
        }
    )
    path = tmp_path / "catalog.parquet"
    raw.write_parquet(path)
    with pytest.raises(CatalogSchemaError) as info:
        load_catalog(path, KNOWN)
    message = str(info.value)
    assert "'price' has dtype Boolean; expected a numeric or string column" in message
    assert "'last_seen'" in message and "'brand'" in message
    assert "'title'" not in message and "'category_id'" not in message
    assert issubclass(CatalogSchemaError, ValueError)


def test_read_table_rejects_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.json"):
        read_table(path)


# ---------------------------------------------------------------------------- file round trips
def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    raw = frame([good_row(0, product_id="007", price="5"), good_row(1, price="oops"), good_row(2)])
    raw.write_csv(path)
    read = read_table(path)
    assert all(dtype == pl.String for dtype in read.dtypes)  # nothing inferred, so bad values survive
    result = load_catalog(path, KNOWN, check_images=False)
    assert result.products.schema == PRODUCT_SCHEMA
    assert result.products["product_id"].to_list() == ["007", "p2"]
    assert result.quarantine["price"].to_list() == ["oops"]
    assert result.counts == {
        **{k: 0 for k in result.counts},
        "rows": 3,
        "products": 2,
        "quarantined": 1,
        "quarantined.non_numeric_price": 1,
    }


def test_parquet_round_trip_with_native_dtypes(tmp_path: Path) -> None:
    raw = pl.DataFrame(
        {
            "product_id": [10, 11, 12, 13],
            "title": ["Product ten", "Product eleven", "Product twelve", "Product thirteen"],
            "retailer": ["acme"] * 4,
            "price": [1.5, 2.0, float("nan"), 4.0],
            "currency": ["eur", "EUR", "EUR", "EUR"],
            "category_id": [1.0, 2.5, 1.0, 3237.0],
            "last_seen": [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3), None],
            "description": ["d", None, None, None],
        }
    )
    path = tmp_path / "catalog.parquet"
    raw.write_parquet(path)
    result = load_catalog(path, KNOWN, check_images=False)
    assert result.products.schema == PRODUCT_SCHEMA
    assert result.products.select("offer_id", "category_id", "last_seen").rows() == [
        ("acme|10", 1, datetime(2024, 1, 1, tzinfo=UTC))
    ]
    assert result.quarantine.select("source_row", "reason", "product_id", "category_id").rows() == [
        (1, "unknown_category", "11", "2.5"),
        (2, "non_numeric_price", "12", "1"),
        (3, "bad_last_seen", "13", "3237"),
    ]
    assert result.products["description"].to_list() == ["d"]


def test_parquet_datetime_time_zones(tmp_path: Path) -> None:
    naive = datetime(2024, 3, 1, 8, 0)
    raw = pl.DataFrame({**{k: [v, v] for k, v in good_row(0).items() if k != "last_seen"}}).with_columns(
        product_id=pl.Series(["a", "b"]),
        last_seen=pl.Series([naive, naive]).dt.cast_time_unit("ns"),
    )
    result = validate_catalog(raw, KNOWN, check_images=False)
    assert result.products["last_seen"].to_list() == [datetime(2024, 3, 1, 8, tzinfo=UTC)] * 2

    aware = raw.with_columns(pl.col("last_seen").dt.replace_time_zone("Europe/Madrid"))
    result = validate_catalog(aware, KNOWN, check_images=False)
    assert result.products.schema == PRODUCT_SCHEMA
    assert result.products["last_seen"].to_list() == [datetime(2024, 3, 1, 7, tzinfo=UTC)] * 2


def test_empty_catalog() -> None:
    raw = pl.DataFrame(schema=dict.fromkeys(REQUIRED_COLUMNS, pl.String))
    result = validate_catalog(raw, KNOWN)
    assert result.products.schema == PRODUCT_SCHEMA and result.products.height == 0
    assert result.quarantine.height == 0
    assert result.counts["rows"] == 0
