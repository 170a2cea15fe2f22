"""The out-of-category filter: keeps mis-tagged products off category pages.

For each (page, product) pair it gathers evidence (:meth:`OutOfCategoryFilter.evidence`): the tree walk's
category, the product's centroid similarity against the nearest unrelated page, and a kNN vote of the
catalog's own tags among similar titles (and images); :func:`out_of_category` turns it into a flag and a
reason naming the signal that disagreed (title, visual or price).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.reranking.neighbours import NeighbourVote


@dataclass(frozen=True)
class OutOfCategoryConfig:
    """Thresholds of :func:`out_of_category` (a pair is flagged when any signal disagrees).

    Title: fewer than ``max_vote`` of the nearest titles are tagged within the page, or fewer than
    ``title_vote`` and the categorizer puts the product elsewhere and it is closer to another page's
    centroid. Visual: the same vote over images, when it passed its self-check (``visual_slack``). Price:
    ``|price_z| > max_price_abs_z`` while the title vote is below ``price_vote``. Defaults were set on a
    development seed of the Flipkart protocol.
    """

    neighbours: int = 10
    max_vote: float = 0.2
    title_vote: float = 0.4
    max_centroid_margin: float = 0.0
    max_price_abs_z: float = 6.0
    price_vote: float = 0.6
    # the visual vote is used only when, on the catalog's own tags, it flags at most this much more of the
    # products than the title vote does (``OutOfCategoryFilter.visual_check``): a weak image model's
    # neighbours are noise, and would remove correctly tagged products
    visual_slack: float = 0.05
    self_check_sample: int = 5_000


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


class OutOfCategoryFilter:
    """The out-of-category filter over one catalog (a :class:`CatalogContext`): the neighbour votes of the
    catalog's tags (titles, and images when the catalog has them) are indexed on first use and the page
    relations computed once per set of pages, so a run scores all its pages against one index."""

    def __init__(self, catalog: CatalogContext, config: OutOfCategoryConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or OutOfCategoryConfig()
        self._votes: dict[str, NeighbourVote] = {}
        self._relations: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._visual_check: dict[str, float | bool] | None = None

    def visual_check(self) -> dict[str, float | bool]:
        """Whether the visual vote is trusted on this catalog: on a seeded sample of the products with an
        image, the share each vote would flag on the product's own tagged category (``title_self_flag``,
        ``visual_self_flag``). Tags are mostly right, so a vote that flags many of them is noise; the
        visual vote is used when its share is at most the title's plus ``visual_slack``."""
        if self._visual_check is None:
            c, cfg = self.catalog, self.config
            with_image = np.flatnonzero(c.image_rows())
            if len(with_image) < 2:
                self._visual_check = {"visual_used": False}
                return self._visual_check
            rng = np.random.default_rng(0)
            local = np.sort(rng.permutation(len(with_image))[: cfg.self_check_sample])
            rows = with_image[local]
            own = c.products.get_column("category_id").to_numpy()[rows]
            title = float((self._vote("title")(rows, own) < cfg.max_vote).mean())
            visual = float((self._vote("visual")(local, own) < cfg.max_vote).mean())
            self._visual_check = {
                "title_self_flag": round(title, 4),
                "visual_self_flag": round(visual, 4),
                "visual_used": visual <= title + cfg.visual_slack,
            }
        return self._visual_check

    def _vote(self, kind: str) -> NeighbourVote:
        """The ``title`` or ``visual`` neighbour vote over the whole catalog (the visual one over the rows
        that have an image)."""
        if kind not in self._votes:
            c = self.catalog
            tags = c.products.get_column("category_id").to_numpy()
            if kind == "title":
                space = c.vectors if c.title_vectors is None else c.title_vectors
                self._votes[kind] = NeighbourVote(space, tags, c.taxonomy, self.config.neighbours)
            else:
                ok = np.flatnonzero(c.image_rows())
                self._votes[kind] = NeighbourVote(c.image_vectors[ok], tags[ok], c.taxonomy, self.config.neighbours)
        return self._votes[kind]

    def _page_relations(self, centroids: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        key = centroids.get_column("category_id").to_numpy().tobytes()
        if key not in self._relations:
            self._relations[key] = related_pages(centroids, self.catalog.taxonomy)
        return self._relations[key]

    def evidence(self, pairs: pl.DataFrame, centroids: pl.DataFrame, rows: np.ndarray | None = None) -> pl.DataFrame:
        """The inputs of :func:`out_of_category` for every (``category_id``, ``offer_id``) row of ``pairs``
        (other columns pass through, order kept): ``centroid_margin, predicted_category_id,
        predicted_within, neighbour_vote`` and, with images, ``visual_vote`` (null for products without an
        image). ``centroids``: ``category_id, centroid`` of every page (the competing pages of the centroid
        margin). ``rows``: the pairs' product rows when the caller has them (``CatalogContext.rows``)."""
        c = self.catalog
        rows = c.rows(pairs.get_column("offer_id")) if rows is None else np.asarray(rows, dtype=np.int64)
        page_ids = centroids.get_column("category_id").to_numpy()
        order = np.argsort(page_ids, kind="stable")
        pair_pages = pairs.get_column("category_id").to_numpy()
        slot = np.minimum(np.searchsorted(page_ids[order], pair_pages), len(order) - 1)
        if len(pair_pages) and (page_ids[order][slot] != pair_pages).any():
            raise ValueError("out-of-category filter: a pair references a page without a centroid row")
        page_pos = order[slot]
        centroid_vectors, related = self._page_relations(centroids)
        predicted = c.products.get_column("predicted_category_id").fill_null(-1).to_numpy()[rows]
        evidence = [
            pl.Series("centroid_margin", centroid_margin(c.vectors, rows, page_pos, centroid_vectors, related)),
            pl.Series("predicted_category_id", predicted, dtype=pl.Int64).replace(-1, None),
            pl.Series("predicted_within", c.taxonomy.is_within(predicted, pair_pages)).set(
                pl.Series(predicted < 0), None
            ),
            pl.Series("neighbour_vote", self._vote("title")(rows, pair_pages).astype(np.float32)),
        ]
        ok = c.image_rows()
        if ok.sum() > 1 and self.visual_check()["visual_used"]:
            with_image = np.flatnonzero(ok)
            local = np.full(len(ok), -1, dtype=np.int64)
            local[with_image] = np.arange(len(with_image))
            has = ok[rows]
            visual = np.full(len(rows), np.nan, dtype=np.float32)
            if has.any():
                visual[has] = self._vote("visual")(local[rows[has]], pair_pages[has])
            evidence.append(pl.Series("visual_vote", visual).fill_nan(None))
        return pairs.with_columns(evidence)

    def flag(self, pairs: pl.DataFrame, centroids: pl.DataFrame, rows: np.ndarray | None = None) -> pl.DataFrame:
        """:meth:`evidence` and the verdict (:func:`out_of_category`) with this filter's thresholds."""
        return out_of_category(self.evidence(pairs, centroids, rows), config=self.config)


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
