"""Tests for seestocks_rank.benchmarks.matching: the public matching pool and the pair model's evaluation, on
tiny generated frames (no real data, no model training: a stand-in model scores pairs)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.benchmarks.matching import (
    DEEPMATCHER_SETS,
    WDC_FILE,
    deepmatcher_pairs,
    evaluate_pair_model,
    parse_price,
    pricerunner_blocked,
    pricerunner_pairs,
    public_matching_pairs,
    wdc_pairs,
)
from seestocks_rank.rules.pair_model import PAIR_COLUMNS, read_matching_pairs
from seestocks_rank.splits import hash_split


class TitleModel:
    """Stand-in pair model: probability 1 when both titles share their first word, else 0."""

    threshold = 0.5

    def proba(self, pairs: pl.DataFrame) -> np.ndarray:
        first = [pl.col(c).str.to_lowercase().str.split(" ").list.first() for c in ("title_a", "title_b")]
        return pairs.select((first[0] == first[1]).cast(pl.Float64)).to_series().to_numpy()


class HashEncoder:
    """Stand-in text encoder: titles with the same first word get nearly the same unit vector."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            rng = np.random.default_rng(int(hash_split(pl.Series([t.split(" ")[0]]), 10**6)[0]))
            v = rng.standard_normal(16) + 0.01 * np.random.default_rng(len(t)).standard_normal(16)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def _tables() -> dict[str, pl.DataFrame]:
    a = pl.DataFrame({"id": [0, 1, 2], "title": ["sony tv 40", "lg fridge", ""], "brand": ["sony", None, "x"],
                      "price": [399.0, None, 1.0]})  # fmt: skip
    b = pl.DataFrame({"id": [0, 1], "title": ["sony bravia 40", "samsung fridge"], "brand": [None, "samsung"],
                      "price": [410.0, 900.0]})  # fmt: skip
    pairs = pl.DataFrame({"ltable_id": [0, 1, 2], "rtable_id": [0, 1, 0], "label": [1, 0, 1]})
    return {"tableA": a, "tableB": b, "train": pairs, "valid": pairs, "test": pairs}


def test_deepmatcher_pairs_join_both_tables_and_drop_empty_titles() -> None:
    pairs = deepmatcher_pairs(_tables(), "train", "abt-buy")
    assert tuple(pairs.columns) == (*PAIR_COLUMNS, "source")
    assert pairs.height == 2  # the pair with an empty title on side a is dropped
    first = pairs.row(0, named=True)
    assert (first["title_a"], first["brand_a"], first["price_a"]) == ("sony tv 40", "sony", 399.0)
    assert (first["title_b"], first["price_b"], first["label"]) == ("sony bravia 40", 410.0, 1)
    assert first["source"] == "abt-buy"


def test_parse_price_reads_comma_and_dot_decimals() -> None:
    got = pl.select(parse_price(pl.Series(["78,79", "79.9", "1,234.50", "1.234,50", "$ 12", "", None, "EUR"])))
    assert got.to_series().to_list() == [78.79, 79.9, 1234.5, 1234.5, 12.0, None, None, None]


def _offers(n_clusters: int = 30, per: int = 3) -> pl.DataFrame:
    rows = []
    for c in range(n_clusters):
        for k in range(per):
            rows.append({"product_id": f"{c}-{k}", "title": f"p{c} model {c} v{k}", "retailer": f"r{k}",
                         "price": None, "cluster_id": f"c{c}", "block": "phones" if c % 2 else "tvs"})  # fmt: skip
    rows.append({"product_id": "dup", "title": "p0 model 0 again", "retailer": "r0", "price": None,
                 "cluster_id": "c0", "block": "tvs"})  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"price": pl.Float64})


def test_pricerunner_pairs_block_label_by_cluster_and_skip_one_retailer() -> None:
    offers = _offers()
    pairs = pricerunner_pairs(offers, HashEncoder().encode(offers["title"].to_list()), neighbours=3, max_pairs=10_000)
    assert pairs.height > 0 and set(pairs["source"]) == {"pricerunner"}
    cluster = dict(zip(offers["title"], offers["cluster_id"], strict=True))
    shop = dict(zip(offers["title"], offers["retailer"], strict=True))
    for row in pairs.iter_rows(named=True):
        assert shop[row["title_a"]] != shop[row["title_b"]]  # one retailer's offers are never a pair
        assert row["label"] == int(cluster[row["title_a"]] == cluster[row["title_b"]])
    assert pairs["label"].sum() > 0


def test_pricerunner_pairs_cap_keeps_positives_up_to_half() -> None:
    offers = _offers()
    vectors = HashEncoder().encode(offers["title"].to_list())
    full = pricerunner_pairs(offers, vectors, neighbours=8, max_pairs=100_000)
    positives = int(full["label"].sum())
    cap = 2 * positives + 4
    small = pricerunner_pairs(offers, vectors, neighbours=8, max_pairs=cap)
    assert small.height == min(cap, full.height) and int(small["label"].sum()) == positives
    tiny = pricerunner_pairs(offers, vectors, neighbours=8, max_pairs=10)
    assert tiny.height == 10 and int(tiny["label"].sum()) == 5


def _wdc_raw(n: int = 60) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "title_left": [f"item {i}" for i in range(n)],
            "title_right": [f"item {i} b" for i in range(n)],
            "brand_left": ["acme"] * n,
            "brand_right": [""] * n,
            "price_left": ["78,79"] * n,
            "price_right": [None] * n,
            "cluster_id_left": [str(i) for i in range(n)],
            "cluster_id_right": [str(i if i % 2 else i + 1) for i in range(n)],
            "label": [str(i % 2) for i in range(n)],
        }
    )


def test_wdc_pairs_split_on_both_clusters() -> None:
    raw = _wdc_raw()
    train, test = wdc_pairs(raw)
    assert train.height + test.height == raw.height and train.height > 0 and test.height > 0
    seen = hash_split(raw["cluster_id_left"]) < 6
    both = seen & (hash_split(raw["cluster_id_right"]) < 6)
    assert sorted(train["title_a"]) == sorted(raw.filter(pl.Series(both))["title_left"])
    assert train["price_a"].unique().to_list() == [78.79] and train["price_b"].null_count() == train.height
    assert train["label"].dtype == pl.Int8


def test_evaluate_pair_model_served_tuned_and_grouping() -> None:
    test = pl.DataFrame({"title_a": ["a x", "b y", "c z", "d w"], "title_b": ["a q", "b r", "e s", "f t"],
                         "label": [1, 0, 0, 1]})  # fmt: skip
    offers = _offers(n_clusters=6, per=2)
    blocked = pricerunner_blocked(offers, HashEncoder().encode(offers["title"].to_list()), neighbours=3)
    result = evaluate_pair_model(TitleModel(), {"abt-buy": {"test": test, "valid": test}, "pricerunner": blocked})
    served = result["abt-buy"]["served"]
    assert (served["precision"], served["recall"], served["f1"]) == (0.5, 0.5, 0.5)
    assert result["abt-buy"]["tuned_on_valid"]["f1"] == 0.5 and result["abt-buy"]["test_pairs"] == 4
    pr = result["pricerunner"]
    assert pr["test_offers"] == offers.height and pr["served"]["precision"] == 1.0  # first word = the product
    # r0 lists product 0 twice: linked as the rules link, its second listing stays apart (one offer per shop)
    assert pr["served"]["recall"] < 1.0
    shops = offers["retailer"].to_numpy()
    assert (shops[blocked["i"]] != shops[blocked["j"]]).all()


def test_public_matching_pairs_from_files(tmp_path: Path) -> None:
    tables = _tables()
    for folder in DEEPMATCHER_SETS.values():
        (tmp_path / folder).mkdir()
        a = tables["tableA"].rename({"brand": "manufacturer"}) if folder == "amazon-google" else tables["tableA"]
        a.with_columns(pl.col("price").cast(pl.String)).write_csv(tmp_path / folder / "tableA.csv")
        tables["tableB"].rename({"title": "name"}).write_csv(tmp_path / folder / "tableB.csv")
        for split in ("train", "valid", "test"):
            tables[split].write_csv(tmp_path / folder / f"{split}.csv")
    wdc = tmp_path / WDC_FILE
    wdc.parent.mkdir(parents=True)
    with gzip.open(wdc, "wt") as f:
        for row in _wdc_raw().iter_rows(named=True):
            f.write(json.dumps({**row, "label": int(row["label"])}) + "\n")
    offers = _offers(n_clusters=40, per=3)
    pricerunner = tmp_path / "pricerunner.csv"
    offers.select(
        "product_id",
        pl.col("title").alias("product_title"),
        pl.col("retailer").alias("vendor_id"),
        "cluster_id",
        pl.col("block").alias("category_label"),
    ).write_csv(pricerunner)

    pool, test_sets = public_matching_pairs(tmp_path, pricerunner, HashEncoder())
    counts = dict(pool.group_by("source").len().iter_rows())
    assert counts["abt-buy"] == counts["walmart-amazon"] == 4  # train + valid, the empty-title pair dropped
    assert counts["pricerunner"] > 0 and counts["wdc"] > 0
    assert pool.filter(pl.col("source") == "amazon-google")["brand_a"].to_list()[0] == "sony"
    assert set(test_sets) == {*DEEPMATCHER_SETS, "wdc", "pricerunner"} and "valid" not in test_sets["abt-buy"]
    test_clusters = set(test_sets["pricerunner"]["offers"]["cluster_id"])
    train_clusters = set(offers.filter(pl.Series(hash_split(offers["cluster_id"]) < 6))["cluster_id"])
    assert test_clusters and not test_clusters & train_clusters
    pool.write_csv(tmp_path / "pool.csv")
    back = read_matching_pairs(tmp_path / "pool.csv")
    assert back.height == pool.height and back["label"].sum() == pool["label"].sum()

    held, held_sets = public_matching_pairs(tmp_path, pricerunner, HashEncoder(), include_valid=False)
    assert held.height == pool.height - 3 * 2 and held_sets["abt-buy"]["valid"].height == 2


@pytest.mark.parametrize("name", ["abt-buy"])
def test_evaluate_without_valid_reports_served_only(name: str) -> None:
    test = pl.DataFrame({"title_a": ["a x", "b y"], "title_b": ["a q", "c r"], "label": [1, 0]})
    row = evaluate_pair_model(TitleModel(), {name: {"test": test}})[name]
    assert "tuned_on_valid" not in row and row["served"]["f1"] == 1.0 and row["oracle_best_f1"] == 1.0
