"""Tests for the seeded demo generator."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from seestocks_rank.synthetic.demo import BAD_ROW_KINDS, UNKNOWN_CATEGORY_ID, DemoPaths, generate_demo

FILES = ("taxonomy", "catalog", "category_pages", "judgments", "truth")
CATALOG_COLUMNS = ["product_id", "title", "retailer", "price", "currency", "category_id", "image_path",
                   "last_seen", "description", "brand"]  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return generate_demo(tmp_path_factory.mktemp("demo"), n_products=1500, n_retailers=4, seed=0)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return generate_demo(tmp_path_factory.mktemp("big"), seed=3)


def _catalog(p: DemoPaths) -> pl.DataFrame:
    return pl.read_csv(p.catalog, infer_schema=False)


def _joined(p: DemoPaths) -> pl.DataFrame:
    """Catalog rows side by side with their truth rows (aligned by position)."""
    cat = _catalog(p).rename({"product_id": "pid", "retailer": "ret"})
    return pl.concat([cat, pl.read_parquet(p.truth)], how="horizontal")


def test_deterministic_and_seeded(demo: DemoPaths, tmp_path: Path) -> None:
    again = generate_demo(tmp_path / "a", n_products=1500, n_retailers=4, seed=0)
    other = generate_demo(tmp_path / "b", n_products=1500, n_retailers=4, seed=1)
    for f in FILES:
        assert getattr(demo, f).read_bytes() == getattr(again, f).read_bytes(), f
    assert demo.catalog.read_bytes() != other.catalog.read_bytes()
    assert demo.taxonomy.read_bytes() == other.taxonomy.read_bytes()


def test_reference_time(tmp_path: Path) -> None:
    p = generate_demo(tmp_path, n_products=300, n_retailers=3, reference_time=datetime(2030, 5, 1, 12))
    seen = _catalog(p).filter(pl.col("last_seen") != "yesterday")["last_seen"]
    assert seen.max() <= "2030-05-01T12:00:00Z" and seen.min() >= "2030-03-01T00:00:00Z"


def test_taxonomy_format(demo: DemoPaths) -> None:
    lines = demo.taxonomy.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Google_Product_Taxonomy_Version: seestocks-demo"
    seen: set[str] = set()
    ids: set[int] = set()
    for line in lines[1:]:
        m = re.match(r"^(\d+) - (.+)$", line)
        assert m, line
        path = m.group(2).split(" > ")
        assert len(path) <= 5
        assert len(path) == 1 or " > ".join(path[:-1]) in seen, line
        seen.add(m.group(2))
        ids.add(int(m.group(1)))
    assert len(ids) == len(seen) == len(lines) - 1
    assert 40 <= len(seen) <= 70
    assert len({s.split(" > ")[0] for s in seen}) >= 5


def test_pages_cover_products(demo: DemoPaths) -> None:
    pages = pl.read_csv(demo.category_pages)
    assert pages.columns == ["category_id", "page_name"]
    assert 25 <= pages.height <= 35 and pages["category_id"].is_unique().all()
    tax = {int(line.split(" - ", 1)[0]): line.split(" - ", 1)[1]
           for line in demo.taxonomy.read_text(encoding="utf-8").splitlines()[1:]}  # fmt: skip
    assert set(pages["category_id"]) <= set(tax)
    truth = pl.read_parquet(demo.truth).filter(pl.col("bad_row_kind").is_null())
    product_cats = {tax[c] for c in truth["true_category_id"].unique()}
    for cid in pages["category_id"]:
        assert any(p == tax[cid] or p.startswith(tax[cid] + " > ") for p in product_cats), tax[cid]
    # every category that has products is a page
    assert {c for c in truth["true_category_id"].unique()} <= set(pages["category_id"])


def test_catalog_contract(demo: DemoPaths) -> None:
    cat = _catalog(demo)
    assert cat.columns == CATALOG_COLUMNS
    assert (cat["currency"] == "EUR").all()
    assert cat["image_path"].is_null().all()
    good = _joined(demo).filter(pl.col("bad_row_kind").is_null())
    assert good["pid"].is_unique().all()
    assert good["pid"].str.contains(r"^R\d{2}-\d{7}$").all()
    assert good["last_seen"].str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    assert good["price"].cast(pl.Float64).min() > 0
    assert good["brand"].is_not_null().mean() > 0.85  # type: ignore[operator]
    assert 0.35 < good["description"].is_not_null().mean() < 0.65  # type: ignore[operator]
    top = cat["retailer"].value_counts(sort=True)["count"][0] / cat.height
    assert 0.22 < top < 0.42


@pytest.mark.parametrize("which", ["demo", "big"])
def test_shares(which: str, request: pytest.FixtureRequest) -> None:
    p: DemoPaths = request.getfixturevalue(which)
    good = pl.read_parquet(p.truth).filter(pl.col("bad_row_kind").is_null())
    assert 0.05 < good["is_mistagged"].mean() < 0.09  # type: ignore[operator]
    assert 0.08 < good["is_stale"].mean() < 0.12  # type: ignore[operator]
    assert 0.005 < good["is_price_outlier"].mean() < 0.02  # type: ignore[operator]
    assert (good["is_mistagged"] == (good["true_category_id"] != good["assigned_category_id"])).all()
    clusters = good.group_by("cluster_id").agg(pl.len(), pl.col("retailer").n_unique().alias("n_ret"))
    assert 0.27 < (clusters["len"] > 1).mean() < 0.43  # type: ignore[operator]
    assert clusters["len"].max() <= 4 and (clusters["len"] == clusters["n_ret"]).all()


def test_near_duplicates_are_variants(big: DemoPaths) -> None:
    j = _joined(big).filter(pl.col("bad_row_kind").is_null() & ~pl.col("is_price_outlier"))
    spread = j.group_by("cluster_id").agg(
        pl.col("price").cast(pl.Float64).max() / pl.col("price").cast(pl.Float64).min(),
        pl.col("title").n_unique().alias("titles"), pl.len())  # fmt: skip
    multi = spread.filter(pl.col("len") > 1)
    assert multi["price"].max() < 1.15 / 0.85 + 0.15  # type: ignore[operator]
    assert (multi["titles"] == multi["len"]).mean() > 0.95  # type: ignore[operator]
    stale = pl.read_parquet(big.truth)["is_stale"]
    seen = _catalog(big).filter(stale & (pl.col("last_seen") != "yesterday"))["last_seen"]
    assert seen.max() <= "2026-10-17T03:00:00Z"


def test_bad_rows(demo: DemoPaths) -> None:
    j = _joined(demo)
    counts = dict(j["bad_row_kind"].drop_nulls().value_counts().iter_rows())
    assert set(counts) == set(BAD_ROW_KINDS) and min(counts.values()) >= 2
    assert j.height == 1500 + sum(counts.values())
    kind = pl.col("bad_row_kind")
    assert j.filter(kind == "missing_product_id")["pid"].is_null().all()
    assert j.filter(kind == "missing_title")["title"].is_null().all()
    assert (j.filter(kind == "bad_price")["price"] == "abc").all()
    assert (j.filter(kind == "nonpositive_price")["price"].cast(pl.Float64) <= 0).all()
    assert (j.filter(kind == "unknown_category")["category_id"].cast(pl.Int64) == UNKNOWN_CATEGORY_ID).all()
    assert (j.filter(kind == "absurd_title")["title"].str.len_chars() >= 600).all()
    assert (j.filter(kind == "bad_last_seen")["last_seen"] == "yesterday").all()
    cat = _catalog(demo).with_row_index("i")
    dup_rows = cat.filter(pl.Series(j["bad_row_kind"] == "duplicate"))
    for row in dup_rows.iter_rows(named=True):
        earlier = cat.filter((pl.col("i") < row["i"]) & (pl.col("product_id") == row["product_id"]))
        assert earlier.height == 1
        assert earlier.drop("i").row(0) == tuple(v for k, v in row.items() if k != "i")


@pytest.mark.parametrize("which", ["demo", "big"])
def test_mistagged_cheaper_than_page(which: str, request: pytest.FixtureRequest) -> None:
    p: DemoPaths = request.getfixturevalue(which)
    j = _joined(p).filter(pl.col("bad_row_kind").is_null() & ~pl.col("is_price_outlier"))
    med = (j.with_columns(pl.col("price").cast(pl.Float64))
           .group_by("assigned_category_id", "is_mistagged").agg(pl.col("price").median(), pl.len())
           .pivot(on="is_mistagged", index="assigned_category_id", values=["price", "len"])
           .filter(pl.col("len_true") >= 3))  # fmt: skip
    assert med.height >= 8
    assert (med["price_true"] < med["price_false"]).all()


def test_judgments(demo: DemoPaths) -> None:
    jd = pl.read_csv(demo.judgments)
    assert jd.columns == ["category_id", "product_id", "grade"]
    assert jd["grade"].is_between(0, 3).all() and set(jd["grade"]) == {0, 1, 2, 3}
    pages = pl.read_csv(demo.category_pages)
    assert set(jd["category_id"]) <= set(pages["category_id"])
    assert 0.55 <= jd["category_id"].n_unique() / pages.height <= 0.75
    per_page = jd.group_by("category_id").len()["len"]
    assert per_page.min() >= 20 and per_page.max() <= 60  # small demo: some pools are short
    assert set(jd["product_id"]) <= set(_catalog(demo)["product_id"].drop_nulls())
    assert jd.select("category_id", "product_id").is_unique().all()
    # grades follow the truth: genuine offers mostly 3, unrelated mostly 0
    truth = pl.read_parquet(demo.truth).filter(pl.col("bad_row_kind").is_null())
    g = jd.join(truth, on="product_id")
    assert g.filter(pl.col("true_category_id") == pl.col("category_id"))["grade"].mean() > 2.7  # type: ignore[operator]
    mis = g.filter(pl.col("is_mistagged") & (pl.col("assigned_category_id") == pl.col("category_id")))
    assert mis.height > 0 and mis["grade"].mean() < 2  # type: ignore[operator]


def test_truth_covers_catalog(demo: DemoPaths) -> None:
    cat, truth = _catalog(demo), pl.read_parquet(demo.truth)
    assert truth.height == cat.height
    assert truth.schema == pl.Schema({
        "product_id": pl.Utf8, "retailer": pl.Utf8, "true_category_id": pl.Int64,
        "assigned_category_id": pl.Int64, "is_mistagged": pl.Boolean, "cluster_id": pl.Utf8,
        "is_price_outlier": pl.Boolean, "is_stale": pl.Boolean, "bad_row_kind": pl.Utf8,
    })  # fmt: skip
    assert truth["product_id"].equals(cat["product_id"]) and truth["retailer"].equals(cat["retailer"])
    assert (truth["assigned_category_id"] == cat["category_id"].cast(pl.Int64)).all()


def test_default_size_is_fast(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    p = generate_demo(tmp_path)
    assert time.perf_counter() - t0 < 5.0
    assert pl.read_parquet(p.truth)["bad_row_kind"].is_null().sum() == 20_000
