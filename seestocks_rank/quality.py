"""Quality benchmark protocols: mis-tagged products on category pages, sibling confusion, cross-retailer dedup.

Everything here works on any catalog in the pipeline's format (with the true ``category_id``) and any
taxonomy in Google's text format; the loaders for the public data sets only convert them to that form.

* :func:`clean_flipkart_paths`: Flipkart paths without their product- and brand-level tail elements.
* :func:`inject_noise`: a seeded share of products get a wrong tag (half a sibling page, half unrelated).
* :func:`mistag_benchmark`: naive pages (tagged, cheapest first) versus the pipeline's pages (robust
  centroid order, out-of-category filter, business rules) on ``pages_with_mistagged@k``, and the
  filter's ``removal_recall`` / ``false_removal``.
* :func:`sibling_benchmark`: sibling-confusion rate of the tree walk with and without disambiguation.
* :func:`dedup_benchmark` / :func:`matching_benchmark`: pairwise P/R/F1 of offer grouping.
* :func:`cmd_bench_mistagged` / :func:`cmd_bench_dedup`: the ``seestocks-rank bench`` handlers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.categorize import (
    OutOfCategoryConfig,
    SiblingDisambiguator,
    categorize,
    node_prompts,
    node_prototypes,
    out_of_category,
    out_of_category_signals,
    predict_categories,
)
from seestocks_rank.dedup import (
    PAIR_FEATURES,
    OfferMatcher,
    candidate_pairs,
    group_offers,
    number_signature,
    pair_features,
    pairwise_prf,
)
from seestocks_rank.encoders import TextEncoder
from seestocks_rank.evaluation import naive_rankings, page_misplacement
from seestocks_rank.features import compute_features
from seestocks_rank.retrieval import category_centroids, page_members, page_prompt
from seestocks_rank.rules import RuleConfig, apply_rules
from seestocks_rank.taxonomy import Taxonomy

__all__ = [
    "CachedEncoder",
    "clean_flipkart_paths",
    "cmd_bench_dedup",
    "cmd_bench_mistagged",
    "dedup_benchmark",
    "hash_split",
    "inject_noise",
    "matching_benchmark",
    "mistag_benchmark",
    "select_pages",
    "sibling_benchmark",
    "sibling_confusion",
    "taxonomy_from_paths",
]

REFERENCE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------- embeddings cache
class CachedEncoder:
    """Wraps a :class:`TextEncoder`; vectors are cached on disk keyed by model version and text hash."""

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path):
        self.encoder = encoder
        self.model_version = encoder.model_version
        self.dim = encoder.dim
        safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", encoder.model_version)
        self.path = Path(cache_dir) / f"{safe}.npz"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        if self.path.exists():
            with np.load(self.path) as data:
                self._vectors = data["vectors"]
                self._index = {k: i for i, k in enumerate(data["keys"].tolist())}
        self.encoded = 0
        self._unsaved = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = list(dict.fromkeys(k_t for k_t in zip(keys, texts, strict=True) if k_t[0] not in self._index))
        if todo:
            fresh = self.encoder.encode([t for _, t in todo])
            start = len(self._vectors)
            self._vectors = np.concatenate([self._vectors, fresh.astype(np.float32)])
            self._index.update({k: start + i for i, (k, _) in enumerate(todo)})
            self.encoded += len(todo)
            self._unsaved += len(todo)
            if self._unsaved >= 5_000:  # big batches are worth persisting at once; call save() at the end
                self.save()
        return self._vectors[[self._index[k] for k in keys]] if keys else self._vectors[:0]

    def save(self) -> None:
        keys = np.array(sorted(self._index, key=self._index.__getitem__))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=self._vectors)
        tmp.replace(self.path)
        self._unsaved = 0


def hash_split(keys: pl.Series, buckets: int = 10) -> np.ndarray:
    """A stable bucket ``0..buckets-1`` per key (md5 of its text), for train/valid/test splits."""
    return np.array([int(hashlib.md5(str(k).encode()).hexdigest(), 16) % buckets for k in keys.to_list()])


# ---------------------------------------------------------------------------- taxonomies from paths
def taxonomy_from_paths(paths: pl.Series) -> tuple[Taxonomy, dict[str, int]]:
    """A Taxonomy holding every prefix of the given ``"A > B > C"`` paths, with synthetic ids 1.. (sorted
    paths), and the path -> id map."""
    parts = paths.drop_nulls().str.split(" > ").unique()
    prefixes: set[str] = set()
    for depth in range(1, int(parts.list.len().max() or 0) + 1):  # a loop over levels
        level = parts.filter(parts.list.len() >= depth).list.head(depth).list.join(" > ")
        prefixes.update(level.to_list())
    ordered = sorted(prefixes)
    ids = {p: i + 1 for i, p in enumerate(ordered)}
    return Taxonomy.from_text("\n".join(f"{ids[p]} - {p}" for p in ordered)), ids


def clean_flipkart_paths(raw: pl.DataFrame) -> pl.DataFrame:
    """``product_id, title, brand, price, path``: Flipkart's ``>>`` path without the trailing elements that
    repeat the product's name or start with its brand (else the name's first word); products whose root is
    itself a product name are dropped."""
    df = raw.select(
        pl.col("uniq_id").alias("product_id"),
        pl.col("product_name").str.strip_chars().alias("title"),
        pl.col("brand"),
        pl.coalesce("discounted_price", "retail_price").cast(pl.Float64).alias("price"),
        pl.col("product_category_tree")
        .str.strip_chars('[]"')
        .str.split(">>")
        .list.eval(pl.element().str.strip_chars().str.replace_all(r"\s+", " ").str.replace_all(">", "-"))
        .alias("parts"),
    ).with_row_index("_r")
    title = pl.col("title").str.to_lowercase()
    el = pl.col("parts").str.to_lowercase()
    stem = el.str.replace(r"\.\.\.$", "").str.strip_chars()
    brand = pl.coalesce(pl.col("brand").str.to_lowercase().str.strip_chars(), title.str.extract(r"^(\S+)"))
    long = df.explode("parts").with_columns(pl.int_range(pl.len()).over("_r").alias("_i"))
    product_level = (
        pl.when(pl.col("_i") > 0)
        .then(
            title.str.starts_with(stem)
            | stem.str.starts_with(title)
            | (el.str.starts_with(brand + " ") | (el == brand))
            | el.str.contains("...", literal=True)
        )
        .otherwise(  # a root that is itself a (truncated) product name: the product has no category
            el.str.contains("...", literal=True) | (title.str.starts_with(stem) & (stem.str.len_chars() > 30))
        )
    )
    long = long.with_columns(product_level.fill_null(False).alias("_drop"))
    last_kept = long.filter(~pl.col("_drop")).group_by("_r").agg(pl.col("_i").max().alias("_last"))
    kept = (
        long.join(last_kept, on="_r")
        .filter(pl.col("_i") <= pl.col("_last"))
        .group_by("_r", maintain_order=True)
        .agg(pl.col("parts").str.join(" > ").alias("path"))
    )
    return (
        df.join(kept, on="_r", how="left")
        .filter(pl.col("path").is_not_null() & (pl.col("path") != "") & pl.col("title").is_not_null())
        .select("product_id", "title", "brand", "price", "path")
    )


def catalog_frame(df: pl.DataFrame, path_ids: dict[str, int], retailer: str, currency: str) -> pl.DataFrame:
    """Raw rows in the pipeline's catalog contract from ``product_id, title, price, path`` rows."""
    return df.select(
        pl.col("product_id").cast(pl.String),
        pl.col("title"),
        pl.lit(retailer).alias("retailer"),
        pl.col("price").cast(pl.String),
        pl.lit(currency).alias("currency"),
        pl.col("path").replace_strict(path_ids, return_dtype=pl.Int64).cast(pl.String).alias("category_id"),
        pl.lit(REFERENCE_TIME.isoformat()).alias("last_seen"),
    )


# ---------------------------------------------------------------------------- noise protocol
def select_pages(taxonomy: Taxonomy, categories: np.ndarray, min_products: int = 30) -> pl.DataFrame:
    """Category pages: the nodes with at least ``min_products`` products at or below them."""
    rows = pl.DataFrame({"category_id": categories})
    pages = pl.DataFrame({"category_id": taxonomy.ids})
    counts = page_members(rows, pages, taxonomy).group_by("category_id").len()
    return counts.filter(pl.col("len") >= min_products).select("category_id").sort("category_id")


def inject_noise(
    true_categories: np.ndarray, taxonomy: Taxonomy, page_ids: np.ndarray, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded wrong tags: ``rate`` of the products, half moved to a sibling page of their deepest page
    (when it has one), the rest to a random page that is neither an ancestor nor a descendant of the true
    category. Returns the assigned categories and the noisy mask."""
    rng = np.random.default_rng(seed)
    true_categories = np.asarray(true_categories, dtype=np.int64)
    n = len(true_categories)
    assigned = true_categories.copy()
    noisy = np.zeros(n, dtype=bool)
    n_noisy = int(round(rate * n))
    if n_noisy == 0 or len(page_ids) < 2:
        return assigned, noisy
    chosen = rng.permutation(n)[:n_noisy]
    noisy[chosen] = True
    sibling_kind = np.zeros(n_noisy, dtype=bool)
    sibling_kind[: n_noisy // 2] = True
    rng.shuffle(sibling_kind)
    page_ids = np.sort(np.asarray(page_ids, dtype=np.int64))
    # deepest page at or above each chosen product's true category
    is_page = np.zeros(len(taxonomy), dtype=bool)
    is_page[taxonomy.index_of(page_ids)] = True
    anc = taxonomy._anc[taxonomy.index_of(true_categories[chosen])]
    anc_is_page = (anc >= 0) & is_page[np.maximum(anc, 0)]
    has_page = anc_is_page.any(axis=1)
    deepest = np.where(has_page, anc[np.arange(n_noisy), anc.shape[1] - 1 - np.argmax(anc_is_page[:, ::-1], 1)], -1)
    page_idx = taxonomy.index_of(page_ids)
    page_parent = taxonomy._parent[page_idx]
    order = np.argsort(page_parent, kind="stable")
    sorted_parent = page_parent[order]
    my_parent = np.where(deepest >= 0, taxonomy._parent[np.maximum(deepest, 0)], -2)
    lo = np.searchsorted(sorted_parent, my_parent, "left")
    hi = np.searchsorted(sorted_parent, my_parent, "right")
    n_sib = hi - lo - (deepest >= 0)
    use_sibling = sibling_kind & (deepest >= 0) & (n_sib >= 1)
    pick = lo + np.floor(rng.random(n_noisy) * np.maximum(n_sib, 1)).astype(np.int64)
    # skip the product's own page: sibling positions at or after it shift by one
    order_pages = page_ids[order]
    position_in_order = np.empty(len(order), dtype=np.int64)
    position_in_order[order] = np.arange(len(order))
    deep_ids = np.where(deepest >= 0, taxonomy.ids[np.maximum(deepest, 0)], -1)
    slot = np.minimum(np.searchsorted(page_ids, deep_ids), len(page_ids) - 1)
    own_position = np.where(page_ids[slot] == deep_ids, position_in_order[slot], -1)
    pick = np.where((own_position >= 0) & (pick >= own_position), pick + 1, pick)
    sibling_choice = order_pages[np.minimum(pick, len(order_pages) - 1)]
    targets = np.where(use_sibling, sibling_choice, -1)
    elsewhere = ~use_sibling
    while elsewhere.any():  # rejection sampling, a loop over retries
        draw = page_ids[rng.integers(0, len(page_ids), elsewhere.sum())]
        truth = true_categories[chosen[elsewhere]]
        ok = ~taxonomy.is_within(draw, truth) & ~taxonomy.is_within(truth, draw)
        idx = np.flatnonzero(elsewhere)
        targets[idx[ok]] = draw[ok]
        elsewhere[idx[ok]] = False
    assigned[chosen] = targets
    return assigned, noisy


# ---------------------------------------------------------------------------- public data loaders
def load_flipkart(path: str | Path) -> tuple[pl.DataFrame, Taxonomy]:
    """The Flipkart sample as raw catalog rows (pipeline contract, INR) and its cleaned-path taxonomy."""
    clean = clean_flipkart_paths(pl.read_csv(path, infer_schema_length=10_000))
    taxonomy, ids = taxonomy_from_paths(clean.get_column("path"))
    return catalog_frame(clean, ids, "flipkart", "INR"), taxonomy


def load_fashion(path: str | Path) -> tuple[pl.DataFrame, Taxonomy]:
    """The fashion catalog as ``product_id, title, category_id`` on ``masterCategory > subCategory > articleType``."""
    raw = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True)
    df = raw.select(
        pl.col("id").alias("product_id"),
        pl.col("productDisplayName").str.strip_chars().alias("title"),
        pl.concat_str(
            [
                pl.col(c).str.strip_chars().str.replace_all(">", "-")
                for c in ("masterCategory", "subCategory", "articleType")
            ],
            separator=" > ",
        ).alias("path"),
    ).filter(pl.col("title").is_not_null() & (pl.col("title") != "") & pl.col("path").is_not_null())
    taxonomy, ids = taxonomy_from_paths(df.get_column("path"))
    return df.with_columns(pl.col("path").replace_strict(ids, return_dtype=pl.Int64).alias("category_id")), taxonomy


def load_pricerunner(path: str | Path) -> pl.DataFrame:
    """PriceRunner offers in the dedup format: ``product_id, title, retailer, price`` (null), ``cluster_id, block``."""
    raw = pl.read_csv(path)
    raw = raw.rename({c: c.strip() for c in raw.columns})
    return raw.select(
        pl.col("product_id").cast(pl.String),
        pl.col("product_title").alias("title"),
        pl.col("vendor_id").cast(pl.String).alias("retailer"),
        pl.lit(None, pl.Float64).alias("price"),
        pl.col("cluster_id").cast(pl.String),
        pl.col("category_label").alias("block"),
    )


def load_matching(folder: str | Path) -> dict[str, pl.DataFrame]:
    """A DeepMatcher benchmark: ``tableA``/``tableB`` as ``id, title, price`` and ``train/valid/test`` pairs."""
    folder = Path(folder)
    out: dict[str, pl.DataFrame] = {}
    for name in ("tableA", "tableB"):
        t = pl.read_csv(folder / f"{name}.csv", infer_schema=False)
        title = "title" if "title" in t.columns else "name"
        out[name] = t.select(
            pl.col("id").cast(pl.Int64),
            pl.col(title).fill_null("").str.strip_chars().alias("title"),
            pl.col("price").str.replace_all(r"[^0-9.]", "").cast(pl.Float64, strict=False).alias("price"),
        )
    for split in ("train", "valid", "test"):
        out[split] = pl.read_csv(folder / f"{split}.csv").select(
            pl.col("ltable_id").cast(pl.Int64), pl.col("rtable_id").cast(pl.Int64), pl.col("label").cast(pl.Int64)
        )
    return out


# ---------------------------------------------------------------------------- mis-tagged products
def _round(x: float) -> float:
    return round(float(x), 4)


def page_filter_signals(
    products: pl.DataFrame,
    vectors: np.ndarray,
    pages: pl.DataFrame,
    taxonomy: Taxonomy,
    encoder: TextEncoder,
    *,
    neighbours: int = 10,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every (page, tagged product) pair with the pipeline's signals and the out-of-category verdict.

    ``products``: ``offer_id, title, category_id`` (the retailer's tag), ``price``, row-aligned with ``vectors``.
    Returns the pairs (``category_id, offer_id, row`` + :data:`~seestocks_rank.features.FEATURE_COLUMNS` +
    ``centroid_margin, predicted_category_id, predicted_within, neighbour_vote, out_of_category[_reason]``)
    and the page profiles.
    """
    page_ids = pages.get_column("category_id").to_numpy()
    prompt_vectors = encoder.encode([page_prompt(taxonomy.path(int(c))) for c in page_ids])
    profiles = category_centroids(pages, taxonomy, products, vectors, prompt_vectors)
    members = page_members(products, pages, taxonomy)
    rows = members.get_column("row").to_numpy()
    pairs = members.with_columns(products.get_column("offer_id").gather(rows).alias("offer_id"))
    predicted = predict_categories(products, vectors, taxonomy, encoder).get_column("predicted_category_id")
    rows_with_prediction = products.select("offer_id", "title", "category_id", "price").with_columns(predicted)
    feats = compute_features(pairs, rows_with_prediction, vectors, profiles, taxonomy)
    signals = out_of_category_signals(feats, rows_with_prediction, vectors, profiles, taxonomy, neighbours=neighbours)
    return out_of_category(signals, config=OutOfCategoryConfig(neighbours=neighbours)), profiles


def mistag_benchmark(
    raw_catalog: pl.DataFrame,
    taxonomy: Taxonomy,
    encoder: TextEncoder,
    *,
    noise: float = 0.1,
    seed: int = 7,
    min_page_products: int = 30,
    page_size: int = 50,
) -> dict:
    """Naive versus pipeline pages on a catalog whose ``category_id`` is the truth, after seeded tag noise."""
    from seestocks_rank.catalog import validate_catalog

    start = time.perf_counter()
    products = validate_catalog(raw_catalog, taxonomy.ids, check_images=False).products
    true_categories = products.get_column("category_id").to_numpy()
    pages = select_pages(taxonomy, true_categories, min_page_products)
    assigned, noisy = inject_noise(true_categories, taxonomy, pages.get_column("category_id").to_numpy(), noise, seed)
    tagged = products.with_columns(pl.Series("category_id", assigned, dtype=pl.Int64))
    truth = products.select("offer_id", pl.col("category_id").alias("true_category_id"))
    vectors = encoder.encode(tagged.get_column("title").to_list())

    naive = naive_rankings(tagged, pages, taxonomy, page_size)
    pairs, _ = page_filter_signals(tagged, vectors, pages, taxonomy, encoder)
    rows = pairs.get_column("row").to_numpy()
    belongs = taxonomy.is_within(true_categories[rows], pairs.get_column("category_id").to_numpy())
    removed = pairs.get_column("out_of_category").to_numpy()
    mad_removed = pairs.get_column("centroid_cosine_z").fill_null(0).to_numpy() < -2.0

    context = tagged.select("title", "retailer", "price", "last_seen")[rows]
    scored = pl.concat([pairs, context], how="horizontal").select(
        "category_id", "offer_id", "title", "retailer", "price", "last_seen",
        pl.lit(1.0).alias("confidence"), pl.col("centroid_cosine").alias("score"), "centroid_cosine",
        "out_of_category_reason",
    )  # fmt: skip
    ranked = apply_rules(scored, vectors[rows], REFERENCE_TIME, RuleConfig(page_size=page_size))
    pipeline = ranked.filter(pl.col("rank").is_not_null())
    centroid_only = pairs.sort("category_id", "centroid_cosine", descending=[False, True]).with_columns(
        pl.int_range(1, pl.len() + 1).over("category_id").alias("rank")
    )

    def at(rankings: pl.DataFrame, k: int) -> float:
        return page_misplacement(rankings, truth, taxonomy, k)[f"pages_with_misplaced@{k}"]

    mis = ~belongs
    reasons = (
        pairs.filter("out_of_category").get_column("out_of_category_reason").str.extract(r"^(\w+):").value_counts()
    )
    return {
        "products": products.height,
        "pages": pages.height,
        "noise": noise,
        "seed": seed,
        "mistagged_products": int(noisy.sum()),
        "page_product_pairs": len(rows),
        "mistagged_pairs": int(mis.sum()),
        "naive": {"pages_with_mistagged@10": at(naive, 10), "pages_with_mistagged@50": at(naive, 50),
                  "removal_recall": 0.0, "false_removal": 0.0},
        "pipeline": {
            "pages_with_mistagged@10": at(pipeline, 10),
            "pages_with_mistagged@50": at(pipeline, 50),
            "removal_recall": _round(removed[mis].mean()) if mis.any() else None,
            "false_removal": _round(removed[belongs].mean()) if belongs.any() else None,
        },
        "reference": {
            "centroid_order_without_filter@10": at(centroid_only, 10),
            "centroid_order_without_filter@50": at(centroid_only, 50),
            "mad_cut_k2_removal_recall": _round(mad_removed[mis].mean()) if mis.any() else None,
            "mad_cut_k2_false_removal": _round(mad_removed[belongs].mean()) if belongs.any() else None,
        },
        "removed_by_signal": {r: int(n) for r, n in reasons.iter_rows() if r is not None},
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip


# ---------------------------------------------------------------------------- sibling disambiguation
def sibling_confusion(predicted: np.ndarray, true: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """True where the prediction lies in a sibling subtree of the true category (the two meet at the true
    category's parent, and neither contains the other)."""
    lca = taxonomy.lca_depth(predicted, true)
    depth = taxonomy._depth[taxonomy.index_of(true)]
    unrelated = ~taxonomy.is_within(predicted, true) & ~taxonomy.is_within(true, predicted)
    return unrelated & (lca == depth - 1)


def _categorization_metrics(predicted: np.ndarray, true: np.ndarray, taxonomy: Taxonomy) -> dict[str, float]:
    return {
        "sibling_confusion": _round(sibling_confusion(predicted, true, taxonomy).mean()),
        "exact": _round((predicted == true).mean()),
        "within_true": _round(taxonomy.is_within(predicted, true).mean()),
    }


def sibling_benchmark(
    products: pl.DataFrame,
    taxonomy: Taxonomy,
    encoder: TextEncoder,
    *,
    grid: dict[str, list[float]] | None = None,
) -> dict:
    """Sibling confusion of the tree walk with and without the disambiguation layer.

    ``products``: ``product_id, title, category_id`` (true). md5 buckets of ``product_id`` split it into
    train (70%), valid (10%, tunes the layer's margin and weights) and test (20%, reported).
    """
    grid = grid or {"margin": [0.01, 0.02, 0.04, 0.08], "lexical_weight": [0.005, 0.02], "prompt_weight": [0.0, 0.5]}
    bucket = hash_split(products.get_column("product_id"))
    titles = products.get_column("title").to_list()
    cats = products.get_column("category_id").to_numpy()
    vectors = encoder.encode(titles)
    prompts = encoder.encode(node_prompts(taxonomy))
    train, valid, test = bucket >= 3, bucket == 2, bucket <= 1

    def run(fit: np.ndarray, ev: np.ndarray, layer: SiblingDisambiguator | None) -> np.ndarray:
        protos = node_prototypes(taxonomy, prompts, vectors[fit], cats[fit])
        ev_titles = [titles[i] for i in np.flatnonzero(ev)]
        return categorize(vectors[ev], taxonomy, protos, titles=ev_titles, disambiguator=layer).category_id

    # Tune on the valid split: the lowest sibling confusion among settings that keep exact accuracy
    # (within half a point of the walk without the layer), so the layer cannot buy fewer sibling
    # confusions with other errors.
    base_exact = float((run(train, valid, None) == cats[valid]).mean())
    tuning = SiblingDisambiguator(taxonomy, encoder, [titles[i] for i in np.flatnonzero(train)], cats[train])
    best, best_key = {}, (True, np.inf)
    for margin in grid["margin"]:  # a small grid over the layer's three knobs
        for lexical in grid["lexical_weight"]:
            for prompt in grid["prompt_weight"]:
                tuning.margin, tuning.lexical_weight, tuning.prompt_weight = margin, lexical, prompt
                pred = run(train, valid, tuning)
                exact = float((pred == cats[valid]).mean())
                key = (exact < base_exact - 0.005, sibling_confusion(pred, cats[valid], taxonomy).mean() - exact)
                if key < best_key:
                    best, best_key = {"margin": margin, "lexical_weight": lexical, "prompt_weight": prompt}, key
    fit = train | valid
    layer = SiblingDisambiguator(taxonomy, encoder, [titles[i] for i in np.flatnonzero(fit)], cats[fit], **best)
    start = time.perf_counter()
    without = run(fit, test, None)
    t_without = time.perf_counter() - start
    start = time.perf_counter()
    with_layer = run(fit, test, layer)
    t_with = time.perf_counter() - start
    before = _categorization_metrics(without, cats[test], taxonomy)
    after = _categorization_metrics(with_layer, cats[test], taxonomy)
    reduction = 1 - after["sibling_confusion"] / before["sibling_confusion"] if before["sibling_confusion"] else 0.0
    return {
        "products": products.height,
        "categories": len(taxonomy),
        "test_products": int(test.sum()),
        "without_layer": before,
        "with_layer": after,
        "sibling_confusion_reduction": _round(reduction),
        "layer_params": best,
        "seconds_without": round(t_without, 1),
        "seconds_with": round(t_with, 1),
    }


def google_taxonomy_timing(titles: list[str], taxonomy: Taxonomy, encoder: TextEncoder) -> dict:
    """Zero-shot categorization of ``titles`` into a bare taxonomy (node prompts only), with the layer."""
    vectors = encoder.encode(titles)
    start = time.perf_counter()
    prototypes = node_prototypes(taxonomy, encoder.encode(node_prompts(taxonomy)))
    layer = SiblingDisambiguator(taxonomy, encoder)
    result = categorize(vectors, taxonomy, prototypes, titles=titles, disambiguator=layer)
    seconds = time.perf_counter() - start
    roots = pl.Series(taxonomy.nodes.get_column("path").gather(result.node_index)).str.split(" > ").list.first()
    return {
        "titles": len(titles),
        "categories": len(taxonomy),
        "seconds": round(seconds, 1),
        "titles_per_second": round(len(titles) / max(seconds, 1e-9), 1),
        "mean_predicted_depth": _round(taxonomy._depth[result.node_index].mean()),
        "disambiguated_share": _round(result.disambiguated.mean()),
        "top_roots": dict(roots.value_counts(sort=True).head(5).iter_rows()),
    }


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
    from seestocks_rank.dedup import keep_cheapest
    from seestocks_rank.retrieval import robust_centroid

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


# ---------------------------------------------------------------------------- CLI handlers
def default_cache_dir() -> Path:
    """``$SEESTOCKS_CACHE_DIR`` or ``/tmp/seestocks-rank-cache``: where benchmark embeddings are cached."""
    import os
    import tempfile

    return Path(os.environ.get("SEESTOCKS_CACHE_DIR") or Path(tempfile.gettempdir()) / "seestocks-rank-cache")


def text_encoder(cache_dir: str | Path | None = None) -> CachedEncoder:
    """MiniLM (offline weights) behind the embeddings cache."""
    from seestocks_rank.encoders import SentenceTransformerEncoder

    return CachedEncoder(SentenceTransformerEncoder(), cache_dir or default_cache_dir())


def cmd_bench_mistagged(args: argparse.Namespace) -> int:
    """``seestocks-rank bench mistagged``: print the mis-tag protocol's figures as one JSON object."""
    from seestocks_rank.catalog import read_table

    encoder = text_encoder(args.cache_dir)
    result = mistag_benchmark(
        read_table(args.catalog),
        Taxonomy.load(args.taxonomy),
        encoder,
        noise=args.noise,
        seed=args.seed,
        min_page_products=args.min_page_products,
    )
    encoder.save()
    print(json.dumps(result))
    return 0


def cmd_bench_dedup(args: argparse.Namespace) -> int:
    """``seestocks-rank bench dedup``: print grouping P/R/F1 (rule and matcher) as one JSON object."""
    from seestocks_rank.catalog import read_table

    offers = read_table(args.offers)
    encoder = text_encoder(args.cache_dir)
    result = dedup_benchmark(offers, encoder)
    encoder.save()
    print(json.dumps(result))
    return 0


def add_bench_parsers(bench: argparse._SubParsersAction) -> None:
    """Register ``mistagged`` and ``dedup`` under the ``bench`` subcommand group."""
    mis = bench.add_parser("mistagged", help="mis-tagged products on category pages: naive versus pipeline")
    mis.add_argument("--catalog", required=True, help="catalog (pipeline format) whose category_id is the truth")
    mis.add_argument("--taxonomy", required=True, help="taxonomy in Google's taxonomy-with-ids text format")
    mis.add_argument("--noise", type=float, default=0.1, help="share of products given a wrong tag")
    mis.add_argument("--seed", type=int, default=7)
    mis.add_argument("--min-page-products", type=int, default=30, help="a page needs this many products")
    mis.add_argument("--cache-dir", help="embeddings cache (default: $SEESTOCKS_CACHE_DIR or a tmp dir)")
    mis.set_defaults(func=cmd_bench_mistagged)
    dedup = bench.add_parser("dedup", help="cross-retailer offer grouping against true clusters")
    dedup.add_argument("--offers", required=True, help="product_id, title, retailer, price, cluster_id [, block]")
    dedup.add_argument("--cache-dir", help="embeddings cache (default: $SEESTOCKS_CACHE_DIR or a tmp dir)")
    dedup.set_defaults(func=cmd_bench_dedup)
