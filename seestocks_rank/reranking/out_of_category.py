"""The out-of-category filter: signals per (page, product) pair and the flag with its reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.neighbours import NeighbourVote


# ---------------------------------------------------------------------------- out-of-category filter
@dataclass(frozen=True)
class OutOfCategoryConfig:
    """Thresholds of :func:`out_of_category` (a pair is flagged when any signal disagrees).

    Title: fewer than ``max_vote`` of the nearest titles are tagged within the page, or fewer than
    ``title_vote`` and the categorizer puts the product elsewhere and it is closer to another page's
    centroid. Visual: the same vote over images. Price: ``|price_z| > max_price_abs_z`` while the title
    vote is below ``price_vote``. Defaults were set on a development seed of the Flipkart protocol.
    """

    neighbours: int = 10
    max_vote: float = 0.2
    title_vote: float = 0.4
    max_centroid_margin: float = 0.0
    max_price_abs_z: float = 6.0
    price_vote: float = 0.6


def centroid_margin(
    vectors: np.ndarray, rows: np.ndarray, page_pos: np.ndarray, centroid_vectors: np.ndarray, related: np.ndarray
) -> np.ndarray:
    """Cosine to the pair's page centroid minus the best cosine to a page unrelated to it (not an ancestor
    or descendant): negative when the product looks more like another page."""
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), 16_384):  # a loop over chunks of pairs
        sl = slice(start, start + 16_384)
        sims = vectors[rows[sl]] @ centroid_vectors.T
        own = sims[np.arange(sims.shape[0]), page_pos[sl]]
        other = np.where(related[page_pos[sl]], -np.inf, sims).max(axis=1)
        out[sl] = own - np.where(np.isfinite(other), other, -1.0)
    return out


def related_pages(centroids: pl.DataFrame, taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """The pages' centroid vectors and which pages are related (one within the other), in ``centroids``' order."""
    page_ids = centroids.get_column("category_id").to_numpy()
    centroid_vectors = np.ascontiguousarray(centroids.get_column("centroid").to_numpy(), dtype=np.float32)
    within = taxonomy.is_within(page_ids[:, None], page_ids[None, :])
    return centroid_vectors, within | within.T


def out_of_category_signals(
    pairs: pl.DataFrame,
    products: pl.DataFrame,
    vectors: np.ndarray,
    centroids: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    title_vectors: np.ndarray | None = None,
    image_vectors: np.ndarray | None = None,
    image_ok: np.ndarray | None = None,
    neighbours: int = 10,
    title_voter: NeighbourVote | None = None,
    visual_voter: NeighbourVote | None = None,
    product_rows: np.ndarray | None = None,
    page_relations: tuple[np.ndarray, np.ndarray] | None = None,
) -> pl.DataFrame:
    """The inputs of :func:`out_of_category` for every (``category_id``, ``offer_id``) row of ``pairs``
    (other columns pass through, order kept).

    ``products``: ``offer_id, category_id`` (the retailer's tag) and ``predicted_category_id`` (from
    :func:`predict_categories`; null: unknown), row-aligned with ``vectors`` (the space of the page
    centroids), ``title_vectors`` (the title vote's space; default ``vectors``) and ``image_vectors`` /
    ``image_ok``. ``centroids``: ``category_id, centroid`` of every page (the competing pages of the
    centroid margin). Adds ``centroid_margin, predicted_category_id, predicted_within, neighbour_vote`` and,
    with images, ``visual_vote`` (null for products without an image). ``title_voter``/``visual_voter``:
    votes built once for the whole catalog (the visual one over the rows that have an image), reused
    across calls; by default each call builds its own.
    """
    if product_rows is None:
        row_of = products.select("offer_id").with_row_index("_row")
        joined = pairs.join(row_of, on="offer_id", how="left", maintain_order="left")
        if joined.get_column("_row").null_count():
            raise ValueError("out_of_category_signals: a pair references an unknown offer_id")
        rows = joined.get_column("_row").to_numpy().astype(np.int64)
    else:
        joined, rows = pairs, np.asarray(product_rows, dtype=np.int64)
    page_ids = centroids.get_column("category_id").to_numpy()
    order = np.argsort(page_ids, kind="stable")
    pair_pages = joined.get_column("category_id").to_numpy()
    slot = np.minimum(np.searchsorted(page_ids[order], pair_pages), len(order) - 1)
    if len(pair_pages) and (page_ids[order][slot] != pair_pages).any():
        raise ValueError("out_of_category_signals: a pair references a page without a centroid row")
    page_pos = order[slot]
    centroid_vectors, related = page_relations if page_relations is not None else related_pages(centroids, taxonomy)
    tags = products.get_column("category_id").to_numpy()
    predicted = products.get_column("predicted_category_id").fill_null(-1).to_numpy()[rows]
    vote = title_voter or NeighbourVote(vectors if title_vectors is None else title_vectors, tags, taxonomy, neighbours)
    signals = [
        pl.Series("centroid_margin", centroid_margin(vectors, rows, page_pos, centroid_vectors, related)),
        pl.Series("predicted_category_id", predicted, dtype=pl.Int64).replace(-1, None),
        pl.Series("predicted_within", taxonomy.is_within(predicted, pair_pages)).set(pl.Series(predicted < 0), None),
        pl.Series("neighbour_vote", vote(rows, pair_pages).astype(np.float32)),
    ]
    ok = None if image_vectors is None else np.ones(len(image_vectors), bool) if image_ok is None else image_ok
    if image_vectors is not None and ok.sum() > 1:
        with_image = np.flatnonzero(ok)
        local = np.full(len(ok), -1, dtype=np.int64)
        local[with_image] = np.arange(len(with_image))
        has = ok[rows]
        visual = np.full(len(rows), np.nan, dtype=np.float32)
        if has.any():
            query = local[rows[has]]
            image_vote = visual_voter or NeighbourVote(
                image_vectors[with_image], tags[with_image], taxonomy, neighbours
            )
            visual[has] = image_vote(query, pair_pages[has])
        signals.append(pl.Series("visual_vote", visual).fill_nan(None))
    return pairs.with_columns(signals)


def out_of_category(
    pairs: pl.DataFrame,
    *,
    config: OutOfCategoryConfig | None = None,
) -> pl.DataFrame:
    """Flag (page, product) pairs that do not belong on the page, naming the signal that disagreed.

    ``pairs`` columns: ``neighbour_vote`` (tag vote of the product's nearest titles), ``predicted_within``
    (the categorizer puts the product within the page), ``centroid_margin`` (cosine to the page centroid
    minus the best unrelated page's), ``price_z`` and optionally ``visual_vote``. Adds ``out_of_category``
    (bool) and ``out_of_category_reason`` (``title``, ``visual`` or ``price`` plus the figures; null when kept).
    """
    c = config or OutOfCategoryConfig()
    added = "visual_vote" not in pairs.columns
    if added:
        pairs = pairs.with_columns(pl.lit(None, pl.Float32).alias("visual_vote"))
    vote = pl.col("neighbour_vote")
    title = (vote < c.max_vote) | (
        (vote < c.title_vote) & pl.col("predicted_within").not_() & (pl.col("centroid_margin") < c.max_centroid_margin)
    )
    visual = ((pl.col("visual_vote") < c.max_vote) if "visual_vote" in pairs.columns else pl.lit(False)).fill_null(
        False
    )
    price = (pl.col("price_z").abs().fill_null(0) > c.max_price_abs_z) & (vote < c.price_vote)
    reason = (
        pl.when(title)
        .then(
            pl.format(
                "title: {} of similar titles tagged here, categorized elsewhere: {}, centroid margin {}",
                vote.round(2),
                pl.col("predicted_within").not_(),
                pl.col("centroid_margin").round(3),
            )
        )
        .when(visual)
        .then(pl.format("visual: {} of similar images tagged here", pl.col("visual_vote").round(2)))
        .when(price)
        .then(pl.format("price: robust z {} against the page", pl.col("price_z").round(1)))
        .otherwise(None)
    )
    out = pairs.with_columns(reason.alias("out_of_category_reason")).with_columns(
        pl.col("out_of_category_reason").is_not_null().alias("out_of_category")
    )
    return out.drop("visual_vote") if added else out
