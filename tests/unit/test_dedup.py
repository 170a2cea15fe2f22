"""Tests for seestocks_rank.dedup: grouping, keep-cheapest, pair features, the matcher and pairwise P/R/F1."""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.rules.dedup import (
    PAIR_FEATURES,
    OfferMatcher,
    candidate_pairs,
    duplicate_groups,
    group_offers,
    keep_cheapest,
    pair_features,
    pairwise_prf,
)
from seestocks_rank.rules.page_rules import RuleConfig
from seestocks_rank.rules.page_rules import duplicate_groups as rules_duplicate_groups


def test_rules_grouping_is_the_dedup_grouping() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((6, 8)).astype(np.float32)
    v = np.concatenate([v, v[:2] + 0.01])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pages, sigs, prices = np.zeros(8, dtype=np.int64), np.array([""] * 8), np.ones(8)
    got = duplicate_groups(pages, v, sigs, prices, min_cosine=0.9, max_price_ratio=1.6)
    np.testing.assert_array_equal(got, rules_duplicate_groups(pages, v, sigs, prices, RuleConfig()))
    assert got[0] == got[6] and got[1] == got[7] and len(set(got.tolist())) == 6


def test_keep_cheapest_links_the_others() -> None:
    offers = pl.DataFrame({"offer_id": ["a", "b", "c", "d"], "price": [12.0, 9.5, 9.5, 3.0], "group_id": [1, 1, 1, 2]})
    out = keep_cheapest(offers)
    assert out["kept"].to_list() == [False, True, False, True]
    assert out["duplicate_of"].to_list() == ["b", None, "b", None]  # price tie broken by offer_id


def test_group_offers_never_links_one_retailer_directly() -> None:
    i, j = np.array([0, 1, 2]), np.array([1, 2, 3])
    groups = group_offers(4, i, j, np.array([True, True, True]), np.array(["x", "y", "y", "z"]))
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[1] != groups[2]
    assert len(set(group_offers(4, i, j, np.array([False, False, False])).tolist())) == 4


def test_pairwise_prf_counts_pairs_within_blocks() -> None:
    truth = np.array([1, 1, 1, 2, 2])
    pred = np.array([1, 1, 2, 2, 2])
    # true pairs: (0,1) (0,2) (1,2) (3,4) -> 4; predicted: (0,1) (2,3) (2,4) (3,4) -> 4; tp 2
    assert pairwise_prf(pred, truth) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    blocks = np.array([0, 0, 1, 1, 1])  # (0,2) and (1,2) no longer count as true pairs
    assert pairwise_prf(pred, truth, blocks)["recall"] == round(2 / 2, 4)


def test_pair_features(hashing_encoder) -> None:
    a = pl.Series(["Apple iPhone 8 64GB silver", "Bosch drill PSB500"])
    b = pl.Series(["apple iphone 8 64gb space grey", "Makita hammer 18V"])
    f = pair_features(a, hashing_encoder.encode(a.to_list()), np.array([500.0, 40.0]),
                      b, hashing_encoder.encode(b.to_list()), None)  # fmt: skip
    assert f.shape == (2, len(PAIR_FEATURES))
    cols = dict(zip(PAIR_FEATURES, f.T, strict=True))
    assert cols["cosine"][0] > cols["cosine"][1]
    assert cols["numbers_equal"][0] == 1.0 and cols["number_jaccard"][0] == 1.0
    assert cols["code_overlap"][0] == 1.0  # "64gb"
    assert np.isnan(cols["log_price_ratio"]).all()


def test_candidate_pairs_stay_within_blocks() -> None:
    v = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 0]]
    i, j = candidate_pairs(v, np.array([0, 0, 0, 0, 1]), k=1)
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    assert (0, 1) in pairs and (2, 3) in pairs and all(4 not in p for p in pairs)


def test_matcher_fits_and_tunes_a_threshold() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((400, len(PAIR_FEATURES)))
    y = x[:, 0] + 0.1 * rng.random(400) > 0.6
    matcher = OfferMatcher(n_estimators=50).fit(x[:300], y[:300])
    f1 = matcher.tune(x[300:], y[300:])
    assert f1 > 0.8 and 0.05 <= matcher.threshold <= 0.95
    assert matcher.predict(x[300:]).dtype == bool
