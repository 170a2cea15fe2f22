"""Offer-matching and dedup benchmarks."""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.datasets import REFERENCE_TIME
from seestocks_rank.benchmarks.mistag import _round
from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.rules.dedup import (
    PAIR_FEATURES,
    OfferMatcher,
    candidate_pairs,
    group_offers,
    number_signature,
    pair_features,
    pairwise_prf,
)
from seestocks_rank.rules.page_rules import RuleConfig, apply_rules
from seestocks_rank.splits import hash_split


# ---------------------------------------------------------------------------- dedup
def _rule_links(titles_a: pl.Series, titles_b: pl.Series, cosine: np.ndarray, price_ratio: np.ndarray) -> np.ndarray:
    """The business rule's same-product test (near-identical embedding, same numbers, price ratio), pairwise;
    a missing price does not block a link."""
    config = RuleConfig()
    sig = pl.DataFrame({"a": titles_a, "b": titles_b}).select(
        number_signature(pl.col("a")) == number_signature(pl.col("b"))
    )
    price_ok = np.nan_to_num(price_ratio, nan=0.0) <= np.log(config.dedup_max_price_ratio)
    return (cosine >= config.dedup_min_cosine) & sig.to_series().to_numpy() & price_ok


def _prf(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = float((pred & truth).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    return {"precision": _round(p), "recall": _round(r), "f1": _round(2 * p * r / (p + r) if p + r else 0.0)}


def matching_benchmark(tables: dict[str, pl.DataFrame], encoder: TextEncoder) -> dict:
    """Pairwise matcher on a DeepMatcher benchmark: fit on train, threshold on valid, P/R/F1 on test, next to
    the business rule's test."""
    a, b = tables["tableA"], tables["tableB"]

    def split_features(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = tables[split]
        left = pairs.join(a, left_on="ltable_id", right_on="id", how="left")
        right = pairs.join(b, left_on="rtable_id", right_on="id", how="left")
        ta, tb = left.get_column("title").fill_null(""), right.get_column("title").fill_null("")
        va, vb = encoder.encode(ta.to_list()), encoder.encode(tb.to_list())
        feats = pair_features(ta, va, left.get_column("price").to_numpy(), tb, vb, right.get_column("price").to_numpy())
        rule = _rule_links(ta, tb, feats[:, 0], feats[:, PAIR_FEATURES.index("log_price_ratio")])
        return feats, pairs.get_column("label").to_numpy().astype(bool), rule

    f_train, y_train, _ = split_features("train")
    f_valid, y_valid, _ = split_features("valid")
    f_test, y_test, rule_test = split_features("test")
    matcher = OfferMatcher().fit(f_train, y_train)
    matcher.tune(f_valid, y_valid)
    return {
        "test_pairs": len(y_test),
        "rule": _prf(rule_test, y_test),
        "matcher": _prf(matcher.predict(f_test), y_test),
        "threshold": _round(matcher.threshold),
    }


def _max_retailer_share(ranked: pl.DataFrame, k: int = 10) -> float:
    top = ranked.filter(pl.col("rank") <= k)
    if top.height == 0:
        return 0.0
    shares = (
        top.group_by("category_id", "retailer")
        .len()
        .group_by("category_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("share"))
    )
    return _round(shares.get_column("share").mean())


def dedup_benchmark(offers: pl.DataFrame, encoder: TextEncoder, *, neighbours: int = 10) -> dict:
    """Offer grouping against true clusters: ``product_id, title, retailer, price, cluster_id`` (+ optional
    ``block``, e.g. the category; pairs are counted within blocks). md5 buckets of ``cluster_id`` split the
    clusters into train (40%), valid (20%, tunes the link threshold on grouping F1) and test (40%, reported)."""
    if "block" not in offers.columns:
        offers = offers.with_columns(pl.lit("all").alias("block"))
    offers = offers.with_columns(pl.col("price").cast(pl.Float64, strict=False), pl.col("product_id").cast(pl.String))
    bucket = hash_split(offers.get_column("cluster_id"))
    vectors = encoder.encode(offers.get_column("title").fill_null("").to_list())
    block_codes = offers.get_column("block").cast(pl.String).rank("dense").to_numpy().astype(np.int64)
    retailers = offers.get_column("retailer").cast(pl.String).to_numpy()
    clusters = offers.get_column("cluster_id").cast(pl.String).to_numpy()
    prices = offers.get_column("price").to_numpy()
    titles = offers.get_column("title").fill_null("")

    def split(mask: np.ndarray) -> dict:
        rows = np.flatnonzero(mask)
        i, j = candidate_pairs(vectors[rows], block_codes[rows], neighbours)
        gi, gj = rows[i], rows[j]
        feats = pair_features(titles.gather(gi), vectors[gi], prices[gi], titles.gather(gj), vectors[gj], prices[gj])
        rule = _rule_links(titles.gather(gi), titles.gather(gj), feats[:, 0], feats[:, -1])
        return {"rows": rows, "i": i, "j": j, "x": feats, "y": clusters[gi] == clusters[gj], "rule": rule}

    tr, va, te = split(bucket < 4), split((bucket >= 4) & (bucket < 6)), split(bucket >= 6)
    matcher = OfferMatcher().fit(tr["x"], tr["y"])

    def grouping(part: dict, linked: np.ndarray) -> np.ndarray:
        return group_offers(len(part["rows"]), part["i"], part["j"], linked, retailers[part["rows"]])

    def score(part: dict, groups: np.ndarray) -> dict[str, float]:
        rows = part["rows"]
        return pairwise_prf(groups, clusters[rows], block_codes[rows])

    p_valid = matcher.proba(va["x"])
    grid = np.linspace(0.1, 0.95, 35)
    f1 = [score(va, grouping(va, p_valid >= t))["f1"] for t in grid]
    matcher.threshold = float(grid[int(np.argmax(f1))])
    groups = grouping(te, matcher.predict(te["x"]))
    rule_groups = grouping(te, te["rule"])
    rows = te["rows"]
    per_block = {}
    names = offers.get_column("block").cast(pl.String).to_numpy()[rows]
    for name in np.unique(names):  # a loop over blocks (categories) for the report
        m = names == name
        per_block[str(name)] = {
            "rule": pairwise_prf(rule_groups[m], clusters[rows][m]),
            "matcher": pairwise_prf(groups[m], clusters[rows][m]),
        }
    return {
        "offers": offers.height,
        "test_offers": len(rows),
        "retailers": int(len(np.unique(retailers))),
        "rule": score(te, rule_groups),
        "matcher": score(te, groups),
        "threshold": _round(matcher.threshold),
        "per_block": per_block,
        "retailer_diversity": _diversity(offers[rows], vectors[rows], groups),
    }


def _diversity(offers: pl.DataFrame, vectors: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Largest retailer share in each block page's top 10: offers by similarity to the block's robust centroid
    (before), then one offer per group (the cheapest) and the rules' retailer diversity (after)."""
    from seestocks_rank.retrieval.centroids import robust_centroid
    from seestocks_rank.rules.dedup import keep_cheapest

    block = offers.get_column("block").cast(pl.String).to_numpy()
    sims = np.empty(len(block), dtype=np.float32)
    for name in np.unique(block):  # a loop over pages
        m = block == name
        centre, _ = robust_centroid(vectors[m], np.zeros(vectors.shape[1], dtype=np.float32))
        sims[m] = vectors[m] @ centre
    page = pl.DataFrame(
        {
            "category_id": pl.Series(block).rank("dense").cast(pl.Int64),
            "offer_id": offers.get_column("product_id"),
            "retailer": offers.get_column("retailer").cast(pl.String),
            "title": offers.get_column("title"),
            "price": offers.get_column("price").fill_null(1.0),
            "score": sims,
            "group_id": groups,
        }
    )
    before = page.with_columns(pl.col("score").rank("ordinal", descending=True).over("category_id").alias("rank"))
    kept = keep_cheapest(page).filter("kept")
    scored = kept.with_columns(
        pl.lit(REFERENCE_TIME).dt.replace_time_zone("UTC").alias("last_seen"),
        pl.lit(1.0).alias("confidence"),
        pl.col("score").alias("centroid_cosine"),
    ).drop("group_id", "kept", "duplicate_of")
    rows = np.flatnonzero(page.get_column("offer_id").is_in(kept.get_column("offer_id").implode()).to_numpy())
    after = apply_rules(scored, vectors[rows], REFERENCE_TIME, RuleConfig(dedup_min_cosine=1.01))
    return {
        "max_retailer_share@10_before": _max_retailer_share(before),
        "max_retailer_share@10_after": _max_retailer_share(after),
    }
