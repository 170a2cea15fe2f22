"""Tests for seestocks_rank.rules: dedup, freshness, confidence cut, retailer diversity and ranking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from seestocks_rank.rules.page_rules import RuleConfig, apply_rules, duplicate_groups, number_signature

REF = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
DIM = 64


def _signature(titles: list[str]) -> list[str]:
    return pl.DataFrame({"t": titles}).select(number_signature(pl.col("t"))).to_series().to_list()


def test_number_signature() -> None:
    assert _signature(
        [
            "Peppers 500 g",
            "Peppers 2 x 250,5 ml",
            "Peppers 250.5 ml x 2",
            "Bolt M8 8 mm 8 pack",
            "No numbers here",
            "Size 10 and 9",
        ]
    ) == ["500", "2 250.5", "2 250.5", "8", "", "10 9"]


def _unit_rows(*rows: np.ndarray) -> np.ndarray:
    m = np.stack(rows).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_duplicate_groups() -> None:
    e = np.eye(8)
    near = e[0] + 0.05 * e[1]  # cosine with e0 ~0.9988
    vectors = _unit_rows(e[0], near, e[0], e[0], e[2], e[0], e[0])
    pages = np.array([1, 1, 1, 1, 1, 2, 2])
    sigs = np.array(["500", "500", "1000", "500", "500", "500", "500"])
    prices = np.array([10.0, 12.0, 10.0, 20.0, 10.0, 10.0, 11.0])
    labels = duplicate_groups(pages, vectors, sigs, prices, RuleConfig())
    assert labels[0] == labels[1]  # near-identical, same numbers, price ratio 1.2
    assert labels[2] not in (labels[0],)  # different numbers (another size)
    assert labels[3] != labels[0]  # price 20 vs 10 and 12: ratios 2.0 and 1.67 > 1.6
    assert labels[4] != labels[0]  # different vector
    assert labels[5] == labels[6]  # page 2 has its own group ...
    assert labels[5] != labels[0]  # ... which never merges with page 1's
    assert len(set(labels[:5].tolist()) & set(labels[5:].tolist())) == 0
    assert len(set(labels.tolist())) == 5


def test_duplicate_groups_are_transitive() -> None:
    vectors = _unit_rows(*([np.eye(4)[0]] * 3))
    prices = np.array([10.0, 15.0, 22.0])  # 1.5 and 1.47 apart pairwise-adjacent, 2.2 end to end
    labels = duplicate_groups(np.array([5, 5, 5]), vectors, np.array(["", "", ""]), prices, RuleConfig())
    assert len(set(labels.tolist())) == 1


def test_duplicate_groups_pages_interleaved() -> None:
    vectors = _unit_rows(*([np.eye(4)[0]] * 4))
    labels = duplicate_groups(
        np.array([2, 1, 2, 1]), vectors, np.array(["x"] * 4), np.array([1.0, 1.0, 1.0, 1.0]), RuleConfig()
    )
    assert labels[0] == labels[2] and labels[1] == labels[3] and labels[0] != labels[1]


def _scored(rows: list[dict]) -> tuple[pl.DataFrame, np.ndarray]:
    """rows: dicts with category_id, offer_id, confidence and optional title, retailer, price, age_days, vec."""
    df = pl.DataFrame(
        {
            "category_id": [r["category_id"] for r in rows],
            "offer_id": [r["offer_id"] for r in rows],
            "title": [r.get("title", r["offer_id"]) for r in rows],
            "retailer": [r.get("retailer", "r0") for r in rows],
            "price": [float(r.get("price", 10.0)) for r in rows],
            "last_seen": [REF - timedelta(days=r.get("age_days", 0.0)) for r in rows],
            "confidence": [float(r["confidence"]) for r in rows],
        },
        schema_overrides={"last_seen": pl.Datetime("us", "UTC")},
    )
    # Each offer gets its own basis vector unless it names one (duplicates share a vector).
    vecs = np.stack([np.eye(DIM)[r.get("vec", i)] for i, r in enumerate(rows)]).astype(np.float32)
    return df, vecs


def _by_offer(out: pl.DataFrame) -> dict[str, dict]:
    return {r["offer_id"]: r for r in out.iter_rows(named=True)}


def test_dedup_keeps_cheapest_offer_shown() -> None:
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "A", "title": "Peppers 500 g", "price": 12, "confidence": 0.9, "vec": 0},
            {"category_id": 1, "offer_id": "B", "title": "Peppers 500 g", "price": 10, "confidence": 0.7, "vec": 0},
            {"category_id": 1, "offer_id": "D", "title": "Peppers 500 g", "price": 11, "confidence": 0.6, "vec": 0},
            {"category_id": 1, "offer_id": "C", "title": "Onions 1 kg", "price": 3, "confidence": 0.8, "vec": 5},
        ]
    )
    df = df.with_columns(pl.Series("retailer", ["r1", "r2", "r3", "r1"]))
    out = _by_offer(apply_rules(df, vecs, REF))
    assert out["B"]["status"] == "shown" and out["B"]["duplicate_of"] is None
    for dup in ("A", "D"):
        assert out[dup]["status"] == "duplicate"
        assert out[dup]["duplicate_of"] == "B"
        assert out[dup]["reason"] == "cheaper offer of the same product kept"
        assert out[dup]["rank"] is None
    # The kept offer is placed by its group's best score (A's 0.9), above C's 0.8.
    assert out["B"]["rank"] == 1 and out["C"]["rank"] == 2
    assert out["B"]["final_score"] == pytest.approx(0.7)  # its own score is unchanged


def test_dedup_never_merges_two_offers_of_one_retailer() -> None:
    """One shop's near-identical titles are its variants (Hacendado olive oil 0,4º at 4.95 and in a bigger
    bottle at 22.95 share the numbers of the title): both stay on the page."""
    olive = "Aceite de oliva 0,4º Hacendado"
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "small", "title": olive, "price": 4.95, "confidence": 0.9, "vec": 0},
            {"category_id": 1, "offer_id": "large", "title": olive, "price": 5.5, "confidence": 0.8, "vec": 0},
        ]
    )
    out = _by_offer(apply_rules(df, vecs, REF))
    assert out["small"]["status"] == out["large"]["status"] == "shown"
    assert out["small"]["duplicate_of"] is None and out["large"]["duplicate_of"] is None


def test_dedup_through_another_retailer_keeps_the_kept_retailers_variants() -> None:
    """A1 ~ B ~ A2 links A1 and A2 through B: B's and A2's offers fold into the cheapest (A1), but A2 (same
    shop as A1) is A1's variant, not its duplicate, and stays shown."""
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "A1", "retailer": "a", "price": 10, "confidence": 0.9, "vec": 0},
            {"category_id": 1, "offer_id": "B", "retailer": "b", "price": 11, "confidence": 0.9, "vec": 0},
            {"category_id": 1, "offer_id": "A2", "retailer": "a", "price": 12, "confidence": 0.9, "vec": 0},
        ]
    )
    out = _by_offer(apply_rules(df.with_columns(pl.lit("Pimiento 1 kg").alias("title")), vecs, REF))
    assert out["A1"]["status"] == "shown" and out["B"]["duplicate_of"] == "A1"
    assert out["A2"]["status"] == "shown" and out["A2"]["duplicate_of"] is None


def test_duplicate_groups_link_only_different_retailers() -> None:
    vectors = _unit_rows(*([np.eye(4)[0]] * 3))
    labels = duplicate_groups(
        np.array([1, 1, 1]), vectors, np.array(["1"] * 3), np.ones(3), RuleConfig(), np.array(["a", "a", "b"])
    )
    assert labels[0] == labels[2] and labels[1] == labels[2]  # both a's match b's offer: one component
    alone = duplicate_groups(
        np.array([1, 1]), vectors[:2], np.array(["1"] * 2), np.ones(2), RuleConfig(), np.array(["a", "a"])
    )
    assert alone[0] != alone[1]


def test_dedup_does_not_merge_across_pages() -> None:
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "A", "price": 12, "confidence": 0.9, "vec": 0, "title": "x 1"},
            {"category_id": 2, "offer_id": "B", "price": 10, "confidence": 0.9, "vec": 0, "title": "x 1"},
        ]
    )
    out = _by_offer(apply_rules(df, vecs, REF))
    assert out["A"]["status"] == out["B"]["status"] == "shown"
    assert out["A"]["rank"] == out["B"]["rank"] == 1


def test_freshness_decay() -> None:
    config = RuleConfig(freshness_grace_days=2.0, freshness_half_life_days=14.0, min_confidence=0.0)
    ages = {"a0": 0.0, "a1": 1.0, "a2": 2.0, "a9": 9.0, "a16": 16.0, "a30": 30.0}
    df, vecs = _scored([{"category_id": 1, "offer_id": k, "confidence": 0.8, "age_days": v} for k, v in ages.items()])
    out = _by_offer(apply_rules(df, vecs, REF, config))
    expected = {"a0": 1.0, "a1": 1.0, "a2": 1.0, "a9": 0.5**0.5, "a16": 0.5, "a30": 0.25}
    for oid, fresh in expected.items():
        assert out[oid]["freshness"] == pytest.approx(fresh, abs=1e-9)
        assert out[oid]["final_score"] == pytest.approx(0.8 * fresh, abs=1e-9)
    # Fresher offers rank higher at equal confidence; equal scores tie-break on offer_id.
    assert [out[k]["rank"] for k in ("a0", "a1", "a2", "a9", "a16", "a30")] == [1, 2, 3, 4, 5, 6]


def test_naive_reference_time_is_treated_as_utc() -> None:
    df, vecs = _scored([{"category_id": 1, "offer_id": "x", "confidence": 0.9, "age_days": 16.0}])
    out = apply_rules(df, vecs, REF.replace(tzinfo=None))
    assert out.get_column("freshness")[0] == pytest.approx(0.5)


def test_low_confidence_rows_not_shown() -> None:
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "ok", "confidence": 0.5},
            {"category_id": 1, "offer_id": "weak", "confidence": 0.3},
            # Confident but stale: 0.6 * 0.5 = 0.3 after decay.
            {"category_id": 1, "offer_id": "stale", "confidence": 0.6, "age_days": 16.0},
        ]
    )
    out = _by_offer(apply_rules(df, vecs, REF, RuleConfig(min_confidence=0.35)))
    assert out["ok"]["status"] == "shown" and out["ok"]["rank"] == 1 and out["ok"]["reason"] is None
    for oid in ("weak", "stale"):
        assert out[oid]["status"] == "low_confidence"
        assert out[oid]["rank"] is None
    assert out["weak"]["reason"] == "confidence x freshness 0.3 below 0.35"
    assert out["stale"]["reason"] == "confidence x freshness 0.3 below 0.35"


def test_retailer_diversity_in_top_n() -> None:
    rows = [
        {"category_id": 1, "offer_id": f"big{i:02d}", "retailer": "big", "confidence": 0.99 - 0.01 * i}
        for i in range(10)
    ]
    rows += [
        {"category_id": 1, "offer_id": f"r{j}-{i}", "retailer": f"r{j}", "confidence": 0.80 - 0.02 * (2 * j + i)}
        for j in range(5)
        for i in range(2)
    ]
    df, vecs = _scored(rows)
    config = RuleConfig(diversity_top_n=10, diversity_max_per_retailer=3, min_confidence=0.0)
    out = apply_rules(df, vecs, REF, config).filter(pl.col("category_id") == 1)
    top = out.filter(pl.col("rank") <= 10)
    assert top.height == 10
    assert top.filter(pl.col("retailer") == "big").height == 3
    # The best three of "big" keep the lead, then the other retailers in score order; the rest of "big" below.
    assert top.get_column("offer_id").to_list() == [
        "big00",
        "big01",
        "big02",
        "r0-0",
        "r0-1",
        "r1-0",
        "r1-1",
        "r2-0",
        "r2-1",
        "r3-0",
    ]
    assert out.filter(pl.col("rank") == 11).get_column("offer_id").item() == "big03"
    ranks = out.get_column("rank").to_list()
    assert ranks == list(range(1, 21))


def test_diversity_does_not_apply_without_alternatives() -> None:
    rows = [{"category_id": 1, "offer_id": f"o{i}", "retailer": "solo", "confidence": 0.9 - 0.01 * i} for i in range(6)]
    df, vecs = _scored(rows)
    out = apply_rules(df, vecs, REF, RuleConfig(diversity_top_n=4, diversity_max_per_retailer=2))
    assert out.get_column("offer_id").to_list() == [f"o{i}" for i in range(6)]
    assert out.get_column("rank").to_list() == [1, 2, 3, 4, 5, 6]


def test_ranks_contiguous_per_page_and_overflow() -> None:
    rows = [{"category_id": 7, "offer_id": f"p7-{i}", "confidence": 0.9 - 0.05 * i} for i in range(5)]
    rows += [{"category_id": 3, "offer_id": f"p3-{i}", "confidence": 0.9 - 0.05 * i} for i in range(2)]
    rows += [{"category_id": 3, "offer_id": "p3-low", "confidence": 0.1}]
    dup = {"confidence": 0.95, "price": 12, "vec": 0, "title": "p7-0", "retailer": "r1"}
    rows += [{"category_id": 7, "offer_id": "p7-dup", **dup}]
    df, vecs = _scored(rows)
    out = apply_rules(df, vecs, REF, RuleConfig(page_size=3))
    # Sorted by page then rank, non-ranked rows last within their page.
    assert out.get_column("category_id").to_list() == [3, 3, 3, 7, 7, 7, 7, 7, 7]
    p3 = out.filter(pl.col("category_id") == 3)
    assert p3.get_column("offer_id").to_list() == ["p3-0", "p3-1", "p3-low"]
    assert p3.get_column("rank").to_list() == [1, 2, None]
    p7 = _by_offer(out.filter(pl.col("category_id") == 7))
    assert [p7[f"p7-{i}"]["rank"] for i in range(5)] == [1, 2, 3, None, None]
    for i in (3, 4):
        assert p7[f"p7-{i}"]["status"] == "overflow"
        assert p7[f"p7-{i}"]["reason"] == "beyond the page size of 3"
    assert p7["p7-dup"]["status"] == "duplicate" and p7["p7-dup"]["duplicate_of"] == "p7-0"
    assert out.schema["rank"] == pl.Int32
    # No helper columns leak.
    assert out.columns == [*df.columns, "freshness", "final_score", "duplicate_of", "status", "reason", "rank"]


def test_empty_input() -> None:
    df, _ = _scored([{"category_id": 1, "offer_id": "x", "confidence": 0.9}])
    out = apply_rules(df.clear(), np.zeros((0, DIM), dtype=np.float32), REF)
    assert out.height == 0
    assert out.columns == [*df.columns, "freshness", "final_score", "duplicate_of", "status", "reason", "rank"]
    assert out.schema["rank"] == pl.Int32 and out.schema["status"] == pl.Utf8


def test_unknown_freshness_is_not_promoted_to_the_top() -> None:
    df, vecs = _scored(
        [
            {"category_id": 1, "offer_id": "fresh", "confidence": 0.9},
            {"category_id": 1, "offer_id": "unknown", "confidence": 0.9},
        ]
    )
    df = df.with_columns(
        pl.when(pl.col("offer_id") == "unknown").then(None).otherwise(pl.col("last_seen")).alias("last_seen")
    )
    out = _by_offer(apply_rules(df, vecs, REF))
    assert out["fresh"]["rank"] == 1
    assert out["unknown"]["status"] != "shown" or out["unknown"]["rank"] == 2
