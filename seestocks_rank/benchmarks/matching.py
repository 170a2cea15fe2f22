"""The learned offer matcher (:class:`~seestocks_rank.rules.offer_matching.PairModel`) on public sets.

One training pool in the pair format (:data:`~seestocks_rank.rules.offer_matching.PAIR_COLUMNS` + ``source``)
from the DeepMatcher train (+ valid) splits of abt-buy, amazon-google and walmart-amazon, blocked pairs of
PriceRunner's train clusters and the WDC Products pairs whose clusters both fall in train buckets; the test
sets are the DeepMatcher test splits, the other WDC pairs (open-web offers the model never read) and
PriceRunner's test clusters, grouped as in :func:`~seestocks_rank.benchmarks.dedup.dedup_benchmark`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.datasets import load_matching, load_pricerunner
from seestocks_rank.benchmarks.dedup import _prf
from seestocks_rank.benchmarks.mistag import _round
from seestocks_rank.rules.dedup import candidate_pairs, pairwise_prf
from seestocks_rank.rules.offer_matching import linked_offer_groups
from seestocks_rank.rules.pair_model import _best_f1_threshold, offer_pairs
from seestocks_rank.splits import hash_split

__all__ = [
    "DEEPMATCHER_SETS",
    "deepmatcher_pairs",
    "evaluate_pair_model",
    "parse_price",
    "pricerunner_pairs",
    "public_matching_pairs",
    "wdc_pairs",
]

DEEPMATCHER_SETS = {"abt-buy": "abt-buy", "amazon-google": "amazon-google", "walmart-amazon": "walmart-amazon_1"}
"""Report name -> folder under the matching directory."""
WDC_FILE = "wdc_products_train/wdcproducts80cc20rnd050un-train_s.json.gz"
TRAIN_BUCKETS = 6
"""``hash_split`` buckets ``< 6`` of a cluster id are train, ``>= 6`` test (as in ``dedup_benchmark``)."""
PAIR_SCHEMA = {
    "title_a": pl.String,
    "brand_a": pl.String,
    "price_a": pl.Float64,
    "title_b": pl.String,
    "brand_b": pl.String,
    "price_b": pl.Float64,
    "label": pl.Int8,
    "source": pl.String,
}


def parse_price(text: pl.Expr) -> pl.Expr:
    """A price written ``78.79``, ``78,79``, ``1,234.50``, ``1.234,50`` or ``$ 12`` as a float (else null)."""
    t = text.cast(pl.String).str.replace_all(r"[^0-9.,]", "")
    comma_decimal = t.str.contains(r",\d{1,2}$")
    t = (
        pl.when(comma_decimal)
        .then(t.str.replace_all(r"\.", "").str.replace(",", "."))
        .otherwise(t.str.replace_all(",", ""))
    )
    return t.cast(pl.Float64, strict=False)


def _clean(pairs: pl.DataFrame) -> pl.DataFrame:
    """The pool's columns and types; pairs with an empty title on either side dropped."""
    out = pairs.select(
        pl.col(c).cast(t, strict=False) if c in pairs.columns else pl.lit(None, t).alias(c)
        for c, t in PAIR_SCHEMA.items()
    ).with_columns(pl.col(c).str.strip_chars() for c in ("title_a", "title_b", "brand_a", "brand_b"))
    return out.filter((pl.col("title_a").fill_null("") != "") & (pl.col("title_b").fill_null("") != ""))


def deepmatcher_pairs(tables: dict[str, pl.DataFrame], split: str, source: str) -> pl.DataFrame:
    """One DeepMatcher split's pairs in the pair format (``tableA`` = side a, ``tableB`` = side b)."""
    a, b = (tables[t].select("id", "title", "brand", "price") for t in ("tableA", "tableB"))
    pairs = (
        tables[split]
        .join(a.rename(lambda c: f"{c}_a"), left_on="ltable_id", right_on="id_a", how="left")
        .join(b.rename(lambda c: f"{c}_b"), left_on="rtable_id", right_on="id_b", how="left")
    )
    return _clean(pairs.with_columns(pl.lit(source).alias("source")))


def pricerunner_pairs(
    offers: pl.DataFrame,
    vectors: np.ndarray,
    *,
    neighbours: int = 10,
    max_pairs: int = 8000,
    seed: int = 0,
    source: str = "pricerunner",
) -> pl.DataFrame:
    """Labelled pairs from offers with ``title, retailer, cluster_id, block`` (+ ``brand, price``): each offer's
    ``neighbours`` nearest (cosine of ``vectors``) within its block, of a different retailer, labelled by
    cluster equality; at most ``max_pairs``, keeping every positive up to half of them, negatives drawn at
    random from the rest."""
    blocks = offers.get_column("block").cast(pl.String).rank("dense").to_numpy().astype(np.int64)
    i, j = candidate_pairs(vectors, blocks, neighbours)
    shops = offers.get_column("retailer").cast(pl.String).to_numpy()
    keep = shops[i] != shops[j]
    i, j = i[keep], j[keep]
    clusters = offers.get_column("cluster_id").cast(pl.String).to_numpy()
    y = clusters[i] == clusters[j]
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    pos = rng.permutation(pos)[: max(max_pairs // 2, max_pairs - len(neg))]
    neg = rng.permutation(neg)[: max_pairs - len(pos)]
    chosen = np.sort(np.concatenate([pos, neg]))
    pairs = offer_pairs(offers, i[chosen], j[chosen])
    return _clean(pairs.with_columns(pl.Series("label", y[chosen].astype(np.int8)), pl.lit(source).alias("source")))


def wdc_pairs(raw: pl.DataFrame, *, source: str = "wdc") -> tuple[pl.DataFrame, pl.DataFrame]:
    """WDC Products pairs (``title_left/right, brand_*, price_*, cluster_id_*, label``) split on cluster id:
    (pairs whose two clusters both fall in train buckets, the rest: offers of at least one unseen product)."""

    def side(web: str, ours: str) -> list[pl.Expr]:
        brand, price = f"brand_{web}", f"price_{web}"
        return [
            pl.col(f"title_{web}").alias(f"title_{ours}"),
            (pl.col(brand) if brand in raw.columns else pl.lit(None, pl.String)).alias(f"brand_{ours}"),
            (parse_price(pl.col(price)) if price in raw.columns else pl.lit(None, pl.Float64)).alias(f"price_{ours}"),
        ]

    pairs = raw.select(*side("left", "a"), *side("right", "b"), pl.col("label"), pl.lit(source).alias("source"))
    seen = (hash_split(raw.get_column("cluster_id_left")) < TRAIN_BUCKETS) & (
        hash_split(raw.get_column("cluster_id_right")) < TRAIN_BUCKETS
    )
    return _clean(pairs.filter(pl.Series(seen))), _clean(pairs.filter(pl.Series(~seen)))


def read_wdc(path: str | Path) -> pl.DataFrame:
    """WDC Products JSON lines, every field read as text (prices with comma decimals stay parseable)."""
    with gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pl.DataFrame(
        [{k: None if v is None else str(v) for k, v in r.items()} for r in rows], infer_schema_length=None
    )


def pricerunner_blocked(offers: pl.DataFrame, vectors: np.ndarray, neighbours: int = 10) -> dict:
    """Test offers with their candidate pairs as ``dedup_benchmark`` blocks them: ``neighbours`` nearest
    within the category, pairs of one retailer dropped (the rules never link them)."""
    blocks = offers.get_column("block").cast(pl.String).rank("dense").to_numpy().astype(np.int64)
    i, j = candidate_pairs(vectors, blocks, neighbours)
    shops = offers.get_column("retailer").cast(pl.String).to_numpy()
    keep = shops[i] != shops[j]
    return {"offers": offers, "i": i[keep], "j": j[keep], "blocks": blocks}


def public_matching_pairs(
    data_dir: str | Path,
    pricerunner_csv: str | Path,
    encoder,  # noqa: ANN001 - TextEncoder: .encode(list[str]) -> [n, d] unit vectors
    *,
    include_valid: bool = True,
    pricerunner_max_pairs: int = 8000,
    neighbours: int = 10,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict]:
    """(training pool, test sets). The pool: DeepMatcher train (+ valid with ``include_valid``) pairs of each
    set, PriceRunner train-cluster pairs (:func:`pricerunner_pairs`), WDC train-cluster pairs. Test sets:
    ``{name: {"test": pairs[, "valid": pairs]}}`` per DeepMatcher set (``valid`` only when it is held out of
    the pool, for a leak-free threshold), ``"wdc": {"test": pairs}`` and ``"pricerunner"``
    (:func:`pricerunner_blocked` of the test clusters' offers)."""
    data_dir = Path(data_dir)
    pool, test_sets = [], {}
    for name, folder in DEEPMATCHER_SETS.items():
        tables = load_matching(data_dir / folder)
        pool.append(deepmatcher_pairs(tables, "train", name))
        if include_valid:
            pool.append(deepmatcher_pairs(tables, "valid", name))
        test_sets[name] = {"test": deepmatcher_pairs(tables, "test", name)}
        if not include_valid:
            test_sets[name]["valid"] = deepmatcher_pairs(tables, "valid", name)
    offers = load_pricerunner(pricerunner_csv)
    offers = offers.filter(pl.col("title").fill_null("").str.strip_chars() != "")
    bucket = hash_split(offers.get_column("cluster_id"))
    vectors = encoder.encode(offers.get_column("title").to_list())
    train = bucket < TRAIN_BUCKETS
    pool.append(
        pricerunner_pairs(
            offers.filter(pl.Series(train)),
            vectors[train],
            neighbours=neighbours,
            max_pairs=pricerunner_max_pairs,
            seed=seed,
        )
    )
    test_sets["pricerunner"] = pricerunner_blocked(offers.filter(pl.Series(~train)), vectors[~train], neighbours)
    wdc_train, wdc_test = wdc_pairs(read_wdc(data_dir / WDC_FILE))
    pool.append(wdc_train)
    test_sets["wdc"] = {"test": wdc_test}
    return pl.concat(pool), test_sets


def _pair_prf(proba: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    return {**_prf(proba >= threshold, labels.astype(bool)), "threshold": _round(threshold)}


def _oracle_grouping(p: np.ndarray, pr: dict, clusters: np.ndarray, retailers: np.ndarray) -> dict:
    """Grouping F1 over a grid of link thresholds on the test clusters themselves: how much a grouping
    threshold of its own would give (a diagnostic read off the test set, not a result)."""
    best = {"f1": -1.0}
    for t in np.round(np.linspace(0.3, 0.98, 35), 3):  # 35 groupings of the scored candidates
        groups = linked_offer_groups(len(clusters), pr["i"], pr["j"], p, float(t), retailers)
        prf = pairwise_prf(groups, clusters, pr["blocks"])
        if prf["f1"] > best["f1"]:
            best = {**prf, "threshold": float(t)}
    return best


def evaluate_pair_model(model, test_sets: dict) -> dict:  # noqa: ANN001 - .proba(pairs), .threshold
    """Per test set: pair P/R/F1 at the model's served threshold (``served``, the headline); for a set with a
    held-out ``valid`` split also at the F1-best cut on that split (``tuned_on_valid``); ``oracle_best_f1``:
    the best F1 any single cut reaches on the test pairs (a diagnostic of calibration, not a result; likewise
    PriceRunner's ``oracle_grouping``).
    PriceRunner: candidate pairs scored, linked as the rules link them (at the served threshold, most probable
    first, never two offers of one retailer in a group), pairwise P/R/F1 within categories against the true
    clusters."""
    out = {}
    for name, sets in test_sets.items():
        if name == "pricerunner":
            continue
        test = sets["test"]
        y = test.get_column("label").to_numpy().astype(np.int64)
        p = model.proba(test)
        row = {"test_pairs": len(y), "positives": int(y.sum()), "served": _pair_prf(p, y, model.threshold)}
        if "valid" in sets:
            valid = sets["valid"]
            cut, valid_f1 = _best_f1_threshold(model.proba(valid), valid.get_column("label").to_numpy())
            row["tuned_on_valid"] = {**_pair_prf(p, y, cut), "valid_f1": _round(valid_f1)}
        row["oracle_best_f1"] = _round(_best_f1_threshold(p, y)[1])
        out[name] = row
    if "pricerunner" in test_sets:
        pr = test_sets["pricerunner"]
        offers, i, j = pr["offers"], pr["i"], pr["j"]
        p = model.proba(offer_pairs(offers, i, j)) if len(i) else np.zeros(0)
        clusters = offers.get_column("cluster_id").cast(pl.String).to_numpy()
        retailers = offers.get_column("retailer").cast(pl.String).to_numpy()
        groups = linked_offer_groups(offers.height, i, j, p, model.threshold, retailers)
        y = clusters[i] == clusters[j]
        out["pricerunner"] = {
            "test_offers": offers.height,
            "candidate_pairs": len(i),
            "served": {**pairwise_prf(groups, clusters, pr["blocks"]), "threshold": _round(model.threshold)},
            "candidate_pairs_served": _pair_prf(p, y, model.threshold),
            "oracle_grouping": _oracle_grouping(p, pr, clusters, retailers),
        }
    return out
