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

import time

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.datasets import REFERENCE_TIME
from seestocks_rank.evaluation.baselines import naive_rankings
from seestocks_rank.evaluation.metrics import page_misplacement
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.reranking.categorize import predict_categories
from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.reranking.features import candidate_features
from seestocks_rank.reranking.out_of_category import OutOfCategoryConfig, OutOfCategoryFilter
from seestocks_rank.retrieval.centroids import category_centroids, page_members, page_prompt
from seestocks_rank.rules.page_rules import RuleConfig, apply_rules


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
    and the page centroids.
    """
    page_ids = pages.get_column("category_id").to_numpy()
    prompt_vectors = encoder.encode([page_prompt(taxonomy.path(int(c))) for c in page_ids])
    centroids = category_centroids(pages, taxonomy, products, vectors, prompt_vectors)
    members = page_members(products, pages, taxonomy)
    rows = members.get_column("row").to_numpy()
    pairs = members.with_columns(products.get_column("offer_id").gather(rows).alias("offer_id"))
    predicted = predict_categories(products, vectors, taxonomy, encoder).get_column("predicted_category_id")
    rows_with_prediction = products.select("offer_id", "title", "category_id", "price").with_columns(predicted)
    catalog = CatalogContext(rows_with_prediction, vectors, taxonomy)
    ooc = OutOfCategoryFilter(catalog, OutOfCategoryConfig(neighbours=neighbours))
    return candidate_features(pairs, catalog, centroids, out_of_category_filter=ooc), centroids


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
    from seestocks_rank.inputs.catalog import validate_catalog

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
