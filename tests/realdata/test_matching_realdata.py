"""The public offer-matching sets read into the matcher's pair format (no training: that is a benchmark)."""

import polars as pl

from seestocks_rank.benchmarks.datasets import load_matching
from seestocks_rank.benchmarks.matching import (
    DEEPMATCHER_SETS,
    TRAIN_BUCKETS,
    WDC_FILE,
    deepmatcher_pairs,
    read_wdc,
    wdc_pairs,
)
from seestocks_rank.rules.pair_model import read_matching_pairs
from seestocks_rank.splits import hash_split


def test_deepmatcher_sets_round_trip_through_the_documented_pair_format(shared_data, tmp_path):
    for name, folder in DEEPMATCHER_SETS.items():
        tables = load_matching(shared_data / "product_matching" / folder)
        train = deepmatcher_pairs(tables, "train", name)
        raw = pl.read_csv(shared_data / "product_matching" / folder / "train.csv")
        assert train.height == raw.height  # every labelled pair kept, none invented
        assert train["label"].sum() == raw["label"].sum() > 0
        path = tmp_path / f"{name}.csv"
        train.write_csv(path)
        again = read_matching_pairs(path)  # what SEESTOCKS_MATCHING_PAIRS reads
        assert again.height == train.height and again["label"].sum() == train["label"].sum()


def test_wdc_open_web_test_pairs_hold_products_never_trained_on(shared_data):
    raw = read_wdc(shared_data / "product_matching" / WDC_FILE)
    train, test = wdc_pairs(raw)
    assert train.height + test.height == raw.height and train.height > 0 and test.height > 0
    seen = (hash_split(raw["cluster_id_left"]) < TRAIN_BUCKETS) & (hash_split(raw["cluster_id_right"]) < TRAIN_BUCKETS)
    assert int(seen.sum()) == train.height  # a test pair always holds at least one product of an unseen cluster
    assert set(test["label"].unique().to_list()) == {0, 1}
