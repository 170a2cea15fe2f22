"""Cross-retailer offer matching in the rules: candidate pairs blocked by the embedding index, scored by
the learned :class:`~seestocks_rank.rules.pair_model.PairModel` (incrementally: a pair is scored again only
when one of its offers' text or the model changed) or by the strict duplicate test, then linked so that no
group holds two offers of one retailer.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from seestocks_rank.rules.dedup import components, number_signature
from seestocks_rank.rules.pair_model import PairModel, offer_pairs, offer_text

__all__ = [
    "MIN_COSINE",
    "NEIGHBOURS",
    "accept_links",
    "blocked_pairs",
    "linked_offer_groups",
    "match_offers",
    "offer_keys",
    "rule_links",
    "score_offer_pairs",
]

NEIGHBOURS = 5  # candidate pairs: each offer's nearest neighbours of other retailers in the embedding index ...
MIN_COSINE = 0.75  # ... at least this similar


def offer_keys(offers: pl.DataFrame) -> pl.Series:
    """A content key per offer (hash of the text the matcher reads): a pair is re-scored when it changes."""
    brand = pl.col("brand") if "brand" in offers.columns else pl.lit(None, pl.String)
    return offers.select(
        offer_text(pl.col("title"), brand, pl.col("price")).hash(seed=7).alias("offer_key")
    ).to_series()


def blocked_pairs(
    vectors: np.ndarray, retailers: np.ndarray, *, neighbours: int = NEIGHBOURS, min_cosine: float = MIN_COSINE
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs ``(i, j)``, ``i < j``: ``j`` among ``i``'s nearest neighbours in the embedding index
    with cosine at least ``min_cosine``, of a different retailer (a retailer lists a product once)."""
    from seestocks_rank.retrieval.index import build_index

    n = len(vectors)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = build_index(vectors, kind="flat" if n <= 200_000 else "ivf")
    k = min(neighbours + 1, n)
    sims, nn = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    src = np.repeat(np.arange(n), k)
    dst, sim = nn.ravel(), sims.ravel()
    shops = np.unique(np.asarray(retailers).astype(str), return_inverse=True)[1].ravel()
    ok = (dst >= 0) & (dst != src) & (sim >= min_cosine)
    ok[ok] &= shops[src[ok]] != shops[dst[ok]]
    pairs = np.unique(np.stack([np.minimum(src[ok], dst[ok]), np.maximum(src[ok], dst[ok])], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


PAIR_SCORE_SCHEMA = {
    "offer_a": pl.String,
    "offer_b": pl.String,
    "key_a": pl.UInt64,
    "key_b": pl.UInt64,
    "matcher_version": pl.String,
    "probability": pl.Float64,
}


def score_offer_pairs(
    model: PairModel, offers: pl.DataFrame, i: np.ndarray, j: np.ndarray, previous: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int]:
    """Match probability of each candidate pair ``(offers[i], offers[j])``, reusing ``previous`` scores of a
    pair whose two offers' text and the model are unchanged. ``offers``: ``offer_id, title, price``
    (+ ``brand``). Returns the scores (:data:`PAIR_SCORE_SCHEMA`) and how many pairs were scored anew."""
    keys = offer_keys(offers)
    ids = offers.get_column("offer_id").cast(pl.String)
    current = pl.DataFrame(
        {
            "offer_a": ids.gather(i),
            "offer_b": ids.gather(j),
            "key_a": keys.gather(i),
            "key_b": keys.gather(j),
            "_i": i,
            "_j": j,
        }
    ).with_columns(pl.lit(model.version).alias("matcher_version"))
    on = ["offer_a", "offer_b", "key_a", "key_b", "matcher_version"]
    if previous is not None and previous.height:
        current = current.join(previous.select(*on, "probability"), on=on, how="left")
    else:
        current = current.with_columns(pl.lit(None, pl.Float64).alias("probability"))
    todo = current.filter(pl.col("probability").is_null())
    if todo.height:
        frame = offer_pairs(offers, todo.get_column("_i").to_numpy(), todo.get_column("_j").to_numpy())
        fresh = todo.with_columns(pl.Series("probability", model.proba(frame), pl.Float64))
        current = pl.concat([current.filter(pl.col("probability").is_not_null()), fresh])
    # in candidate order whatever was reused: a join does not keep row order, and the published table (and a
    # resumed night's output) must not depend on which pairs were scored before
    return current.sort("_i", "_j").select(list(PAIR_SCORE_SCHEMA)).cast(PAIR_SCORE_SCHEMA), todo.height


def rule_links(
    titles_a: pl.Series,
    titles_b: pl.Series,
    cosine: np.ndarray,
    prices_a: np.ndarray,
    prices_b: np.ndarray,
    *,
    min_cosine: float,
    max_price_ratio: float,
) -> np.ndarray:
    """The strict duplicate test without a learned matcher: near-identical embeddings, the same numbers in
    both titles, prices within a ratio (a missing price does not block a link)."""
    same_numbers = (
        pl.DataFrame({"a": titles_a, "b": titles_b})
        .select(number_signature(pl.col("a")) == number_signature(pl.col("b")))
        .to_series()
        .to_numpy()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(prices_a, prices_b) / np.minimum(prices_a, prices_b)
    price_ok = ~(ratio > max_price_ratio)  # NaN (missing price) passes
    return (cosine >= min_cosine) & same_numbers & price_ok


def accept_links(
    i: np.ndarray, j: np.ndarray, probability: np.ndarray, threshold: float, retailers: np.ndarray
) -> np.ndarray:
    """Which pairs link their offers: those at or above ``threshold``, most probable first, unless the link
    would put two offers of one retailer in one group (a retailer lists a product once, so such a group
    holds two products: "500 W" ~ another shop's drill ~ "600 W"). Greedy union-find over the candidate
    links only (a small share of the pairs)."""
    shops = np.unique(np.asarray(retailers).astype(str), return_inverse=True)[1].ravel()
    parent = np.arange(len(shops))
    members: dict[int, set[int]] = {}
    accepted = np.zeros(len(i), dtype=bool)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    candidates = np.flatnonzero(probability >= threshold)
    for k in candidates[np.argsort(-probability[candidates], kind="stable")]:
        a, b = root(int(i[k])), root(int(j[k]))
        if a == b:
            accepted[k] = True
            continue
        shops_a = members.get(a, {int(shops[a])})
        shops_b = members.get(b, {int(shops[b])})
        if shops_a & shops_b:
            continue
        parent[b] = a
        members[a] = shops_a | shops_b
        members.pop(b, None)
        accepted[k] = True
    return accepted


def linked_offer_groups(
    n: int, i: np.ndarray, j: np.ndarray, probability: np.ndarray, threshold: float, retailers: np.ndarray
) -> np.ndarray:
    """Group label per offer: connected components of the pairs :func:`accept_links` links (what the rules
    merge, catalog-wide)."""
    linked = accept_links(i, j, probability, threshold, retailers)
    return components(n, i[linked], j[linked])


def match_offers(
    offers: pl.DataFrame,
    vectors: np.ndarray,
    model: PairModel | None,
    previous: pl.DataFrame | None = None,
    *,
    neighbours: int = NEIGHBOURS,
    min_cosine: float = MIN_COSINE,
    rule_min_cosine: float = 0.9,
    rule_max_price_ratio: float = 1.6,
) -> tuple[pl.DataFrame, dict[str, object]]:
    """The night's offer pairs: candidates blocked by the embedding index (other retailers, nearest
    neighbours), each with its match ``probability`` and ``linked`` (see :func:`accept_links`).
    Without a model, the strict :func:`rule_links` test decides (probability 0 or 1, version ``rule``).
    ``offers``: ``offer_id, title, retailer, price`` (+ ``brand``), row-aligned with ``vectors``.
    Returns the pairs (``offer_a < offer_b`` by row) and counts for the run's metadata."""
    retailers = offers.get_column("retailer").cast(pl.String).to_numpy()
    floor = min_cosine if model is not None else rule_min_cosine
    i, j = blocked_pairs(vectors, retailers, neighbours=neighbours, min_cosine=floor)
    cosine = np.einsum("ij,ij->i", vectors[i], vectors[j]).astype(np.float64)
    if model is None:
        titles = offers.get_column("title").fill_null("")
        prices = offers.get_column("price").cast(pl.Float64).to_numpy()
        links = rule_links(
            titles.gather(i),
            titles.gather(j),
            cosine,
            prices[i],
            prices[j],
            min_cosine=rule_min_cosine,
            max_price_ratio=rule_max_price_ratio,
        )
        ids = offers.get_column("offer_id").cast(pl.String)
        keys = offer_keys(offers)
        scores = pl.DataFrame(
            {
                "offer_a": ids.gather(i),
                "offer_b": ids.gather(j),
                "key_a": keys.gather(i),
                "key_b": keys.gather(j),
                "matcher_version": pl.repeat("rule", len(i), eager=True, dtype=pl.String),
                "probability": links.astype(np.float64),
            }
        ).cast(PAIR_SCORE_SCHEMA)
        fresh, threshold = len(i), 0.5
    else:
        scores, fresh = score_offer_pairs(model, offers, i, j, previous)
        threshold = model.threshold
    scores = scores.with_columns(pl.Series("cosine", cosine), (pl.col("probability") >= threshold).alias("linked"))
    counts = {
        "pairs": scores.height,
        "scored": fresh,
        "reused": scores.height - fresh,
        "linked": int(scores.get_column("linked").sum()),
        "threshold": threshold,
        "matcher_version": model.version if model is not None else "rule",
    }
    return scores, counts
