"""A seeded generator of a catalog at SeeStocks' scale (565K offers, 1,347 pages) over a full taxonomy.

Offers are drawn over the taxonomy's leaves with Zipf-like popularity; a title is a brand, the leaf's
name, an attribute and a model code, so a text encoder clusters offers by category. The catalog has what
the pipeline has to handle, in realistic shares: near-duplicate offers of one product across retailers
(reworded title, other price), coarse tags (the parent category), mis-tagged offers (another leaf),
price outliers and stale offers. The active pages are categories whose subtree holds at least
``min_page_offers`` offers (retrieval pulls 200 candidates per page from the whole catalog). Judgments for
the fusion model grade sampled (page, offer) pairs from the ground truth. Everything is vectorised, so
565K offers take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy

REFERENCE_TIME = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


SEESTOCKS_OFFERS = 565_000


SEESTOCKS_PAGES = 1_347


_SYLLABLES = ("ka", "lo", "mi", "zen", "tor", "vek", "ra", "sol", "fi", "dur", "mon", "tek", "bri", "ax", "nor", "pel")


_ATTRIBUTES = (
    "Black", "White", "Grey", "Red", "Blue", "Green", "Steel", "Oak", "XL", "Compact", "Pro", "Mini",
    "2-Pack", "Set of 4", "500 ml", "1 kg", "18V", "12 cm", "Large", "Organic",
)  # fmt: skip


_RETAILERS = (
    "Mercatia", "Hogarplus", "TecnoRed", "Bricomax", "Casa Viva", "Deportia", "Moda Sur", "Electroprix",
    "Jardinea", "Juguetón", "Farmaluz", "Librerium", "Mascotia", "Autored", "Oficentro", "Gourmetia",
)  # fmt: skip


@dataclass(frozen=True)
class ScaleShares:
    """Shares of the catalog's offers with each kind of defect or variant."""

    duplicate_offers: float = 0.12
    coarse_tags: float = 0.10
    mistagged: float = 0.03
    price_outliers: float = 0.01
    stale: float = 0.10


@dataclass(frozen=True)
class ScaleCatalogPaths:
    catalog: Path
    category_pages: Path
    judgments: Path
    truth: Path


def _pick(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def _brands(rng: np.random.Generator, n: int) -> np.ndarray:
    parts = rng.integers(0, len(_SYLLABLES), size=(n, 3))
    syllables = np.asarray(_SYLLABLES)
    return np.char.capitalize(
        np.char.add(np.char.add(syllables[parts[:, 0]], syllables[parts[:, 1]]), syllables[parts[:, 2]])
    )


def eligible_pages(taxonomy: Taxonomy, tags: np.ndarray, *, min_offers: int, n_pages: int, seed: int) -> np.ndarray:
    """``n_pages`` category ids whose subtree holds at least ``min_offers`` of the tagged offers, spread
    over depths (seeded); fewer when not enough categories qualify."""
    idx = taxonomy.index_of(tags)
    anc = taxonomy._anc[idx]
    counts = np.bincount(anc[anc >= 0].ravel(), minlength=len(taxonomy))
    candidates = np.flatnonzero(counts >= min_offers)
    rng = np.random.default_rng(seed + 1)
    chosen = rng.choice(candidates, size=min(n_pages, len(candidates)), replace=False)
    return np.sort(taxonomy.ids[chosen])


def generate_scale_catalog(
    out_dir: str | Path,
    taxonomy: Taxonomy,
    *,
    n_offers: int = SEESTOCKS_OFFERS,
    n_pages: int = SEESTOCKS_PAGES,
    n_retailers: int = 14,
    min_page_offers: int = 40,
    judged_pages: int = 120,
    judged_per_page: int = 40,
    shares: ScaleShares = ScaleShares(),
    seed: int = 0,
) -> ScaleCatalogPaths:
    """Write ``catalog.parquet`` (the catalog contract), ``category_pages.csv``, ``judgments.csv`` and
    ``truth.parquet`` (true category per offer, for evaluation) under ``out_dir``."""
    if n_retailers > len(_RETAILERS):
        raise ValueError(f"n_retailers={n_retailers}: at most {len(_RETAILERS)} retailer names")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nodes = taxonomy.nodes
    has_child = np.zeros(len(taxonomy), dtype=bool)
    has_child[taxonomy._parent[taxonomy._parent >= 0]] = True
    leaves = np.flatnonzero(~has_child)
    popularity = 1.0 / np.arange(1, len(leaves) + 1) ** 0.9
    rng.shuffle(popularity)

    n_items = max(1, int(round(n_offers * (1 - shares.duplicate_offers))))
    item_leaf = leaves[_pick(rng, n_items, popularity)]
    item_brand = _brands(rng, max(50, n_items // 40))[rng.integers(0, max(50, n_items // 40), n_items)]
    item_attr = np.asarray(_ATTRIBUTES)[rng.integers(0, len(_ATTRIBUTES), n_items)]
    letters = np.asarray(list("ABCDEFGHJKLMNPRSTVXZ"))
    item_model = np.char.add(
        np.char.add(letters[rng.integers(0, len(letters), n_items)], letters[rng.integers(0, len(letters), n_items)]),
        np.char.add("-", rng.integers(100, 9999, n_items).astype(str)),
    )
    leaf_median = np.exp(rng.normal(3.4, 1.1, len(taxonomy)))
    item_price = leaf_median[item_leaf] * np.exp(rng.normal(0, 0.35, n_items))

    # offers: every item once, plus duplicate offers of random items at other retailers
    item = np.concatenate([np.arange(n_items), rng.integers(0, n_items, n_offers - n_items)])
    duplicate = np.arange(n_offers) >= n_items
    retailer_weights = 1.0 / np.arange(1, n_retailers + 1) ** 0.7
    retailer = _pick(rng, n_offers, retailer_weights)
    retailer[duplicate] = (retailer[item[duplicate]] + rng.integers(1, n_retailers, duplicate.sum())) % n_retailers
    leaf = item_leaf[item]
    names = nodes.get_column("name").to_numpy()
    parent_idx = taxonomy._parent
    parent_name = np.where(parent_idx[leaf] >= 0, names[np.maximum(parent_idx[leaf], 0)], "")
    titles = pl.DataFrame(
        {
            "brand": item_brand[item],
            "name": names[leaf],
            "parent": parent_name,
            "attr": item_attr[item],
            "model": item_model[item],
            "dup": duplicate,
            "with_parent": rng.random(n_offers) < 0.25,
        }
    ).select(
        pl.when(pl.col("dup"))  # a reworded duplicate: model first, lower case, attribute dropped
        .then(pl.concat_str(pl.col("model"), pl.col("brand"), pl.col("name").str.to_lowercase(), separator=" "))
        .when(pl.col("with_parent"))
        .then(pl.concat_str("brand", "name", pl.format("({})", "parent"), "attr", "model", separator=" "))
        .otherwise(pl.concat_str("brand", "name", "attr", "model", separator=" "))
        .alias("title")
    )
    price = item_price[item] * np.where(duplicate, rng.uniform(0.88, 1.15, n_offers), 1.0)
    outlier = rng.random(n_offers) < shares.price_outliers
    price[outlier] *= np.exp(rng.choice([-1.0, 1.0], outlier.sum()) * rng.uniform(2.5, 4.0, outlier.sum()))

    # tags: true leaf, its parent (coarse) or another leaf (mis-tagged)
    tag = leaf.copy()
    draw = rng.random(n_offers)
    coarse = (draw < shares.coarse_tags) & (parent_idx[leaf] >= 0)
    tag[coarse] = parent_idx[leaf[coarse]]
    mistagged = (draw >= shares.coarse_tags) & (draw < shares.coarse_tags + shares.mistagged)
    tag[mistagged] = leaves[_pick(rng, int(mistagged.sum()), popularity)]
    stale = rng.random(n_offers) < shares.stale
    age_hours = np.where(stale, rng.uniform(72, 24 * 90, n_offers), rng.uniform(0, 36, n_offers))
    last_seen = pl.Series([REFERENCE_TIME]).dt.replace_time_zone(None)[0] - pl.Series(
        (age_hours * 3600).astype(np.int64) * 1_000_000
    ).cast(pl.Duration("us"))
    catalog = pl.DataFrame(
        {
            "product_id": pl.Series(np.char.add("P", np.char.zfill(np.arange(n_offers).astype(str), 8))),
            "title": titles.get_column("title"),
            "retailer": np.asarray(_RETAILERS)[retailer],
            "price": np.round(price, 2).clip(0.01),
            "currency": ["EUR"] * n_offers,
            "category_id": taxonomy.ids[tag],
            "last_seen": last_seen,
        }
    ).with_columns(pl.col("last_seen").dt.replace_time_zone("UTC"))
    truth = pl.DataFrame(
        {
            "product_id": catalog.get_column("product_id"),
            "item": item,
            "true_category_id": taxonomy.ids[leaf],
            "assigned_category_id": taxonomy.ids[tag],
            "duplicate_offer": duplicate,
            "mistagged": mistagged,
            "stale": stale,
            "price_outlier": outlier,
        }
    )
    tags = catalog.get_column("category_id").to_numpy()
    pages = eligible_pages(taxonomy, tags, min_offers=min_page_offers, n_pages=n_pages, seed=seed)
    judgments = _judgments(taxonomy, pages, truth, rng, judged_pages, judged_per_page)
    paths = ScaleCatalogPaths(out / "catalog.parquet", out / "category_pages.csv", out / "judgments.csv",
                              out / "truth.parquet")  # fmt: skip
    catalog.write_parquet(paths.catalog)
    pl.DataFrame({"category_id": pages}).write_csv(paths.category_pages)
    judgments.write_csv(paths.judgments)
    truth.write_parquet(paths.truth)
    return paths


def _judgments(
    taxonomy: Taxonomy, pages: np.ndarray, truth: pl.DataFrame, rng: np.random.Generator, n_pages: int, per_page: int
) -> pl.DataFrame:
    """Graded pairs from the truth: 3 the offer's true category is the page or below it, 1 a sibling
    branch (same parent as the page), 0 elsewhere; half drawn from the page's tagged offers, half at random."""
    judged = rng.choice(pages, size=min(n_pages, len(pages)), replace=False)
    tags = truth.get_column("assigned_category_id").to_numpy()
    true = truth.get_column("true_category_id").to_numpy()
    product = truth.get_column("product_id").to_numpy()
    page_col, rows = [], []
    for page in judged:  # a loop over the judged pages (a hundred), vectorised within
        inside = np.flatnonzero(taxonomy.is_within(tags, np.full(len(tags), page)))
        picked = np.concatenate(
            [
                rng.choice(inside, min(per_page // 2, len(inside)), replace=False),
                rng.integers(0, len(tags), per_page // 2),
            ]
        )
        page_col.append(np.full(len(picked), page))
        rows.append(picked)
    page_ids, rows = np.concatenate(page_col), np.concatenate(rows)
    within = taxonomy.is_within(true[rows], page_ids)
    parent = np.asarray([taxonomy.parent(int(p)) or -1 for p in page_ids])
    sibling = ~within & (parent >= 0) & taxonomy.is_within(true[rows], parent)
    grade = np.where(within, 3, np.where(sibling, 1, 0))
    return pl.DataFrame({"category_id": page_ids, "product_id": product[rows], "grade": grade}).unique(
        subset=["category_id", "product_id"], maintain_order=True
    )


def changed_catalog(catalog: pl.DataFrame, *, share: float = 0.01, seed: int = 1) -> tuple[pl.DataFrame, int]:
    """A next night's catalog: ``share`` of the offers changed (half a reworded title, half a new price)
    and every offer seen again (``last_seen`` + 1 day). Returns the catalog and how many offers changed."""
    rng = np.random.default_rng(seed)
    n = catalog.height
    changed = rng.random(n) < share
    retitle = pl.Series(changed & (rng.random(n) < 0.5))
    reprice = pl.Series(changed) & ~retitle
    title = pl.when(retitle).then(pl.col("title") + " (new edition)").otherwise(pl.col("title"))
    price = pl.when(reprice).then((pl.col("price") * 0.9).round(2)).otherwise(pl.col("price"))
    return (
        catalog.with_columns(title.alias("title"), price.alias("price"), pl.col("last_seen") + timedelta(days=1)),
        int(changed.sum()),
    )
