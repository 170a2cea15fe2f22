"""Cross-retailer offer grouping: which offers are the same product, and which one a page keeps.

Two layers share this module. :func:`duplicate_groups` is the business-rule grouping the pipeline runs
per page (near-identical embeddings, equal number signatures, prices within a ratio). :class:`OfferMatcher`
is a learned pairwise matcher for benchmarks and catalogs with labelled pairs: it scores candidate pairs
(embedding cosine, token and number overlap, price ratio) with a small gradient-boosted model, and
:func:`group_offers` turns the accepted pairs into groups. :func:`keep_cheapest` picks the offer shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "LEXICAL_PAIR_FEATURES",
    "PAIR_FEATURES",
    "OfferMatcher",
    "candidate_pairs",
    "duplicate_groups",
    "group_offers",
    "keep_cheapest",
    "lexical_pair_features",
    "number_signature",
    "pair_features",
    "pairwise_prf",
]


_NUMBER = r"\d+(?:[.,]\d+)?"


_WORD = r"[\p{L}\p{N}]+(?:[./-][\p{L}\p{N}]+)*"  # any script: Spanish "jamón", "aceite"


PAIR_FEATURES = (
    "cosine",
    "token_jaccard",
    "token_containment",
    "number_jaccard",
    "numbers_equal",
    "code_overlap",
    "log_price_ratio",
)


def number_signature(titles: pl.Expr) -> pl.Expr:
    """The sorted set of numbers in a title: offers of one product share sizes and model numbers."""
    return (
        titles.str.extract_all(_NUMBER)
        .list.eval(pl.element().str.replace(",", "."))
        .list.unique()
        .list.sort()
        .list.join(" ")
    )


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label per node of an undirected graph given as edge arrays."""
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def duplicate_groups(
    page_ids: np.ndarray,
    vectors: np.ndarray,
    signatures: np.ndarray,
    prices: np.ndarray,
    *,
    retailers: np.ndarray | None = None,
    min_cosine: float = 0.9,
    max_price_ratio: float = 1.6,
) -> np.ndarray:
    """Group label per row: rows of one page linked when their embeddings are near-identical, their
    number signatures agree and their prices are within a ratio (transitively, as components).

    With ``retailers``, only offers of different retailers are linked: a retailer lists a product once, so
    two near-identical titles of one retailer are variants (sizes, colours, packs), not duplicates."""
    labels = np.empty(len(page_ids), dtype=np.int64)
    signatures = np.unique(np.asarray(signatures, dtype=object).astype(str), return_inverse=True)[1].ravel()
    shops = None if retailers is None else np.unique(np.asarray(retailers).astype(str), return_inverse=True)[1]
    order = np.argsort(page_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(page_ids[order])) + 1
    offset = 0
    for rows in np.split(order, bounds):  # a loop over pages, vectorised within a page
        v = vectors[rows]
        same = (v @ v.T) >= min_cosine
        same &= signatures[rows][:, None] == signatures[rows][None, :]
        p = prices[rows]
        same &= np.maximum(p[:, None], p[None, :]) <= max_price_ratio * np.minimum(p[:, None], p[None, :])
        if shops is not None:
            same &= shops[rows][:, None] != shops[rows][None, :]
        i, j = np.nonzero(same)
        comp = components(len(rows), i, j)
        labels[rows] = comp + offset
        offset += int(comp.max()) + 1 if len(comp) else 0
    return labels


def keep_cheapest(offers: pl.DataFrame, group_column: str = "group_id") -> pl.DataFrame:
    """Per group, keep the cheapest offer (ties: ``offer_id``); the others get ``duplicate_of`` = its id.

    ``offers``: ``offer_id, price`` and ``group_column``. Adds ``kept`` (bool) and ``duplicate_of``.
    """
    kept = pl.col("offer_id").sort_by("price", "offer_id").first().over(group_column)
    return (
        offers.with_columns(kept.alias("_kept"))
        .with_columns(
            (pl.col("offer_id") == pl.col("_kept")).alias("kept"),
            pl.when(pl.col("offer_id") != pl.col("_kept")).then(pl.col("_kept")).otherwise(None).alias("duplicate_of"),
        )
        .drop("_kept")
    )


# ---------------------------------------------------------------------------- learned pairwise matcher
def _token_lists(titles: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
    """Word tokens, number tokens and model-code tokens (mixed letters and digits) of each title."""
    lower = titles.fill_null("").str.to_lowercase()
    words = lower.str.extract_all(_WORD).list.unique()
    numbers = lower.str.extract_all(_NUMBER).list.eval(pl.element().str.replace(",", ".")).list.unique()
    codes = words.list.eval(
        pl.element().filter(pl.element().str.contains(r"\p{N}") & pl.element().str.contains(r"\p{L}"))
    )
    return words, numbers, codes


def candidate_pairs(vectors: np.ndarray, blocks: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, where ``j`` is among ``i``'s ``k`` nearest neighbours within the same block."""
    import faiss

    out_i, out_j = [], []
    order = np.argsort(blocks, kind="stable")
    bounds = np.flatnonzero(np.diff(blocks[order])) + 1
    for rows in np.split(order, bounds):  # a loop over blocks (categories), vectorised within one
        if len(rows) < 2:
            continue
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        kk = min(k + 1, len(rows))
        _, nn = index.search(np.ascontiguousarray(vectors[rows], dtype=np.float32), kk)
        src = np.repeat(np.arange(len(rows)), kk)
        dst = nn.ravel()
        ok = (dst >= 0) & (dst != src)
        a, b = rows[src[ok]], rows[dst[ok]]
        out_i.append(np.minimum(a, b))
        out_j.append(np.maximum(a, b))
    if not out_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.unique(np.stack([np.concatenate(out_i), np.concatenate(out_j)], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


LEXICAL_PAIR_FEATURES = PAIR_FEATURES[1:]


def lexical_pair_features(
    titles_a: pl.Series, prices_a: np.ndarray | None, titles_b: pl.Series, prices_b: np.ndarray | None
) -> np.ndarray:
    """``[n, len(LEXICAL_PAIR_FEATURES)]`` features of row-aligned title pairs: word and number overlap,
    model codes, log price ratio (missing: NaN). Tokens are letters and digits of any script."""
    wa, na, ca = _token_lists(titles_a)
    wb, nb, cb = _token_lists(titles_b)
    df = pl.DataFrame({"wa": wa, "wb": wb, "na": na, "nb": nb, "ca": ca, "cb": cb})
    inter = pl.col("wa").list.set_intersection("wb").list.len()
    union = pl.col("wa").list.set_union("wb").list.len()
    n_inter = pl.col("na").list.set_intersection("nb").list.len()
    n_union = pl.col("na").list.set_union("nb").list.len()
    lexical = df.select(
        (inter / union.clip(1)).alias("token_jaccard"),
        (inter / pl.min_horizontal(pl.col("wa").list.len(), pl.col("wb").list.len()).clip(1)).alias("containment"),
        pl.when(n_union > 0).then(n_inter / n_union).otherwise(None).alias("number_jaccard"),
        (pl.col("na").list.sort().list.join(" ") == pl.col("nb").list.sort().list.join(" ")).cast(pl.Float64),
        pl.when((pl.col("ca").list.len() > 0) & (pl.col("cb").list.len() > 0))
        .then((pl.col("ca").list.set_intersection("cb").list.len() > 0).cast(pl.Float64))
        .otherwise(None)
        .alias("code_overlap"),
    ).to_numpy()
    if prices_a is None or prices_b is None:
        ratio = np.full(len(df), np.nan)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(np.log(np.asarray(prices_a, dtype=np.float64) / np.asarray(prices_b, dtype=np.float64)))
        ratio[~np.isfinite(ratio)] = np.nan
    return np.column_stack([lexical.astype(np.float64), ratio])


def pair_features(
    titles_a: pl.Series,
    vectors_a: np.ndarray,
    prices_a: np.ndarray | None,
    titles_b: pl.Series,
    vectors_b: np.ndarray,
    prices_b: np.ndarray | None,
) -> np.ndarray:
    """``[n, len(PAIR_FEATURES)]`` features of row-aligned offer pairs ``a[k]`` / ``b[k]``: the embedding
    cosine, then :func:`lexical_pair_features`."""
    cosine = np.einsum("ij,ij->i", vectors_a, vectors_b)
    return np.column_stack([cosine, lexical_pair_features(titles_a, prices_a, titles_b, prices_b)])


@dataclass
class OfferMatcher:
    """A pairwise same-product classifier on :data:`PAIR_FEATURES`; ``threshold`` is set by :meth:`tune`."""

    threshold: float = 0.5
    n_estimators: int = 200
    model: object = field(default=None, repr=False)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> OfferMatcher:
        import lightgbm as lgb

        self.model = lgb.LGBMClassifier(
            n_estimators=self.n_estimators, learning_rate=0.05, num_leaves=15, min_child_samples=10, verbose=-1
        )
        self.model.fit(features, labels.astype(np.int64))
        return self

    def proba(self, features: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("OfferMatcher is not fitted")
        return self.model.predict_proba(features)[:, 1]

    def tune(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Set ``threshold`` to the pairwise-F1-maximising cut on held-out labelled pairs; returns that F1."""
        p = self.proba(features)
        grid = np.linspace(0.05, 0.95, 91)
        f1 = np.array([_f1(p >= t, labels.astype(bool)) for t in grid])
        self.threshold = float(grid[int(np.argmax(f1))])
        return float(f1.max())

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.proba(features) >= self.threshold


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 0.0 if tp == 0 else 2 * tp / (pred.sum() + truth.sum())


def group_offers(
    n: int, i: np.ndarray, j: np.ndarray, linked: np.ndarray, retailers: np.ndarray | None = None
) -> np.ndarray:
    """Group label per offer from accepted candidate pairs; pairs of one retailer are never linked
    directly (a retailer lists a product once), so groups are cross-retailer."""
    keep = linked.astype(bool)
    if retailers is not None:
        keep &= retailers[i] != retailers[j]
    return components(n, i[keep], j[keep])


def pairwise_prf(
    pred_groups: np.ndarray, true_groups: np.ndarray, blocks: np.ndarray | None = None
) -> dict[str, float]:
    """Pairwise precision/recall/F1 of a grouping against true clusters, counting pairs within each block."""
    blocks = np.zeros(len(pred_groups), dtype=np.int64) if blocks is None else blocks
    df = pl.DataFrame({"b": blocks, "p": pred_groups, "t": true_groups})

    def pairs(*keys: str) -> int:
        counts = df.group_by(*keys).len().get_column("len").to_numpy().astype(np.int64)
        return int((counts * (counts - 1) // 2).sum())

    tp, pred_pairs, true_pairs = pairs("b", "p", "t"), pairs("b", "p"), pairs("b", "t")
    precision = tp / pred_pairs if pred_pairs else 0.0
    recall = tp / true_pairs if true_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
