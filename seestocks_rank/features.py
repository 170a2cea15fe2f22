"""Stage 2a, reranking signals: one vectorised function per signal over (category page, product) pairs.

Every signal is computed for arbitrary pairs, so the same code scores a page's candidates and the
judged pairs the fusion model is trained on. Missing inputs give nulls, never made-up values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from seestocks_rank.categorize import (
    NeighbourVote,
    OutOfCategoryConfig,
    out_of_category,
    out_of_category_signals,
    related_pages,
)
from seestocks_rank.embedding_store import EmbeddingStore
from seestocks_rank.embeddings import image_vectors, rowwise_dot
from seestocks_rank.lexical import term_coverage
from seestocks_rank.taxonomy import Taxonomy
from seestocks_rank.timing import timed

FEATURE_COLUMNS = (
    "centroid_cosine",
    "centroid_cosine_z",
    "prompt_cosine",
    "name_match",
    "taxonomy_distance",
    "predicted_distance",
    "assigned_within_page",
    "price_z",
    "price_abs_z",
    "visual_similarity",
    "cross_encoder_score",
)
_MAD_TO_SIGMA = 1.4826


def name_match(titles: pl.Expr, page_names: pl.Expr) -> pl.Expr:
    """Share of the page name's words present in the title (title-category coherence, lexical)."""
    return term_coverage(page_names, titles)


def robust_z(values: pl.Expr, median: pl.Expr, mad: pl.Expr, floor: float) -> pl.Expr:
    """(value - median) / (1.4826 * MAD), the MAD floored so tight pages don't explode."""
    return ((values - median) / (pl.max_horizontal(mad, pl.lit(floor)) * _MAD_TO_SIGMA)).cast(pl.Float32)


def compute_features(
    pairs: pl.DataFrame,
    products: pl.DataFrame,
    product_vectors: np.ndarray,
    profiles: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    image_vectors: np.ndarray | None = None,
    image_ok: np.ndarray | None = None,
    chunk_rows: int = 65_536,
    product_rows: np.ndarray | None = None,
) -> pl.DataFrame:
    """Signals for every (``category_id``, ``offer_id``) row of ``pairs`` (other columns pass through).

    ``products``: ``offer_id, title, category_id, price`` and optionally ``predicted_category_id`` (the tree
    walk's category, :func:`seestocks_rank.categorize.predict_categories`), row-aligned with
    ``product_vectors`` (and with ``image_vectors`` / ``image_ok`` when the catalog has images).
    ``taxonomy_distance`` is the tree distance from the assigned category to the page, ``predicted_distance``
    the same from the predicted category (null without a prediction).
    ``profiles``: the ``taxonomy_centroids`` table. Pairs whose product or page is unknown raise.
    ``visual_similarity`` is the cosine between the product's image vector and the page's visual prototype,
    null where either is missing.
    """
    predicted_column = (
        pl.col("predicted_category_id").cast(pl.Int64)
        if "predicted_category_id" in products.columns
        else pl.lit(None, pl.Int64).alias("predicted_category_id")
    )
    prod = products.select(
        "offer_id",
        "title",
        pl.col("category_id").alias("assigned_category_id"),
        "price",
        predicted_column.alias("_predicted_category_id"),
    ).with_row_index("_prow")
    prof = profiles.drop("centroid", "prompt_embedding", "visual_prototype", strict=False).with_row_index("_grow")
    if product_rows is None:
        joined = pairs.join(prod, on="offer_id", how="left", maintain_order="left")
    else:  # rows already located (CatalogSignals.rows): a gather instead of a join against the catalog
        joined = pl.concat([pairs, prod.drop("offer_id")[np.asarray(product_rows)]], how="horizontal")
    joined = joined.join(prof, on="category_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("_prow").is_null() | pl.col("_grow").is_null())
    if unknown.height:
        row = unknown.row(0, named=True)
        raise ValueError(
            f"{unknown.height} pair(s) reference an unknown product or page, e.g. "
            f"category_id={row['category_id']} offer_id={row['offer_id']}"
        )
    prow = joined.get_column("_prow").to_numpy().astype(np.int64)
    grow = joined.get_column("_grow").to_numpy().astype(np.int64)
    centroids = profiles.get_column("centroid").to_numpy().astype(np.float32)
    prompts = profiles.get_column("prompt_embedding").to_numpy().astype(np.float32)
    page_ids = joined.get_column("category_id").to_numpy()
    assigned = joined.get_column("assigned_category_id").to_numpy()
    distance = taxonomy.distance(assigned, page_ids)
    predicted = joined.get_column("_predicted_category_id").fill_null(-1).to_numpy()
    predicted_distance = np.where(predicted >= 0, taxonomy.distance(predicted, page_ids), -1).astype(np.float32)
    within = taxonomy.is_within(assigned, page_ids)
    leaf_name = pl.col("path").str.split(" > ").list.last()
    visual = _visual_similarity(profiles, image_vectors, image_ok, prow, grow, chunk_rows)
    return (
        joined.with_columns(
            pl.Series("centroid_cosine", rowwise_dot(product_vectors, prow, centroids, grow, chunk_rows)),
            pl.Series("prompt_cosine", rowwise_dot(product_vectors, prow, prompts, grow, chunk_rows)),
            pl.Series("taxonomy_distance", distance, dtype=pl.Float32),
            pl.Series("predicted_distance", predicted_distance).replace(-1.0, None),
            pl.Series("assigned_within_page", within, dtype=pl.Float32),
            name_match(pl.col("title"), leaf_name).alias("name_match"),
            robust_z(pl.col("price").log(), pl.col("log_price_median"), pl.col("log_price_mad"), 0.1).alias("price_z"),
            pl.Series("visual_similarity", visual, dtype=pl.Float32).fill_nan(None),
            pl.lit(None, pl.Float32).alias("cross_encoder_score"),
        )
        .with_columns(
            robust_z(pl.col("centroid_cosine"), pl.col("member_cos_median"), pl.col("member_cos_mad"), 0.02).alias(
                "centroid_cosine_z"
            ),
            pl.col("price_z").abs().alias("price_abs_z"),
        )
        .select(*pairs.columns, *(c for c in FEATURE_COLUMNS if c not in pairs.columns))
    )


def _visual_similarity(
    profiles: pl.DataFrame,
    image_vectors: np.ndarray | None,
    image_ok: np.ndarray | None,
    prow: np.ndarray,
    grow: np.ndarray,
    chunk_rows: int,
) -> np.ndarray:
    """Cosine of product image and page visual prototype per pair; NaN (-> null) where either is missing."""
    out = np.full(len(prow), np.nan, dtype=np.float32)
    if image_vectors is None or "visual_prototype" not in profiles.columns or not len(prow):
        return out
    proto_col = profiles.get_column("visual_prototype")
    has_proto = proto_col.is_not_null().to_numpy()
    if not has_proto.any():
        return out
    protos = np.zeros((profiles.height, image_vectors.shape[1]), dtype=np.float32)
    protos[has_proto] = np.asarray(proto_col.filter(pl.Series(has_proto)).to_numpy(), dtype=np.float32)
    ok = np.ones(len(image_vectors), dtype=bool) if image_ok is None else np.asarray(image_ok, dtype=bool)
    valid = ok[prow] & has_proto[grow]
    if valid.any():
        out[valid] = rowwise_dot(image_vectors, prow[valid], protos, grow[valid], chunk_rows)
    return out


def add_cross_encoder_scores(
    features: pl.DataFrame, products: pl.DataFrame, profiles: pl.DataFrame, cross_encoder: object | None
) -> pl.DataFrame:
    """Fill ``cross_encoder_score``: the cross-encoder reads the page's prompt (leaf name and path, as
    in retrieval) and the product title jointly. ``products``: ``offer_id, title``; ``profiles``:
    ``category_id, path``. Without a model the column stays null."""
    if cross_encoder is None or features.height == 0:
        return features
    from seestocks_rank.retrieval import page_prompt

    prompts = profiles.select("category_id", pl.col("path").map_elements(page_prompt, pl.Utf8).alias("_prompt"))
    texts = (
        features.select("category_id", "offer_id")
        .join(prompts, on="category_id", how="left", maintain_order="left")
        .join(products.select("offer_id", "title"), on="offer_id", how="left", maintain_order="left")
    )
    scores = cross_encoder.score(
        texts.get_column("_prompt").to_list(), texts.get_column("title").fill_null("").to_list()
    )
    return features.with_columns(pl.Series("cross_encoder_score", scores, dtype=pl.Float32))


@dataclass
class CatalogSignals:
    """The catalog-wide inputs of the scoring stage, built once per run and shared by every page scored:
    products (``offer_id, title, category_id, price, predicted_category_id``) row-aligned with their
    retrieval vectors (title vectors and image vectors too when the catalog has images), and the
    out-of-category filter's neighbour votes, whose index is built on first use."""

    products: pl.DataFrame
    vectors: np.ndarray
    taxonomy: Taxonomy
    title_vectors: np.ndarray | None = None
    image_vectors: np.ndarray | None = None
    image_ok: np.ndarray | None = None
    neighbours: int = 10
    _cache: dict[str, object] = field(default_factory=dict, repr=False)  # voters, lookups, page relations

    @classmethod
    def build(
        cls, catalog: pl.DataFrame, store: EmbeddingStore, taxonomy: Taxonomy, predicted: pl.DataFrame | None = None
    ) -> CatalogSignals:
        """From the catalog (``offer_id, title, category_id, price``), its embedding store and optionally the
        tree walk's ``predicted`` categories (``offer_id, predicted_category_id``)."""
        columns = ["offer_id", "title", "category_id", "price", "product_id", "retailer", "currency", "last_seen"]
        products = catalog.select(c for c in columns if c in catalog.columns)
        if predicted is not None:
            products = products.join(
                predicted.select("offer_id", "predicted_category_id"), on="offer_id", how="left", maintain_order="left"
            )
        else:
            products = products.with_columns(pl.lit(None, pl.Int64).alias("predicted_category_id"))
        ids = products.get_column("offer_id")
        images = image_vectors(products, store)
        return cls(
            products,
            store.vectors("fused", ids),
            taxonomy,
            title_vectors=store.vectors("text", ids) if images is not None else None,
            image_vectors=images[0] if images is not None else None,
            image_ok=images[1] if images is not None else None,
        )

    @property
    def reference_time(self) -> datetime | None:
        """The catalog's latest ``last_seen``: the crawl time freshness is measured from."""
        return self.products.get_column("last_seen").max() if "last_seen" in self.products.columns else None

    def rows(self, offer_ids: pl.Series) -> np.ndarray:
        """Row of each offer in ``products``, by binary search (no join against the whole catalog, so
        scoring one page costs what its rows cost); raises naming an unknown offer."""
        if "_sorted" not in self._cache:
            ids = self.products.get_column("offer_id").to_numpy().astype(str)
            order = np.argsort(ids, kind="stable")
            self._cache["_sorted"] = (ids[order], order)
        sorted_ids, order = self._cache["_sorted"]
        wanted = offer_ids.to_numpy().astype(str)
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
        bad = (sorted_ids[pos] != wanted) if len(sorted_ids) else np.ones(len(wanted), dtype=bool)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} offer(s) are not in the catalog, e.g. {wanted[np.argmax(bad)]!r}")
        return order[pos]

    def page_relations(self, profiles: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~seestocks_rank.categorize.related_pages` of ``profiles``, computed once per set of pages."""
        ids = profiles.get_column("category_id").to_numpy()
        key = f"_pages_{hashlib.sha1(ids.tobytes()).hexdigest()}"
        if key not in self._cache:
            self._cache[key] = related_pages(profiles, self.taxonomy)
        return self._cache[key]

    def voter(self, kind: str) -> NeighbourVote:
        """The ``title`` or ``visual`` neighbour vote over the whole catalog (built once)."""
        if kind not in self._cache:
            tags = self.products.get_column("category_id").to_numpy()
            if kind == "title":
                space = self.vectors if self.title_vectors is None else self.title_vectors
                self._cache[kind] = NeighbourVote(space, tags, self.taxonomy, self.neighbours)
            else:
                ok = np.flatnonzero(self.image_ok)
                self._cache[kind] = NeighbourVote(self.image_vectors[ok], tags[ok], self.taxonomy, self.neighbours)
        return self._cache[kind]


def candidate_features(
    candidates: pl.DataFrame,
    signals: CatalogSignals,
    profiles: pl.DataFrame,
    *,
    cross_encoder: object | None = None,
    out_of_category_config: OutOfCategoryConfig | None = None,
    timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """The ``cross_encoder_features`` stage for (``category_id, offer_id``) rows: every signal of
    :func:`compute_features`, the cross-encoder score when a model is given, and with
    ``out_of_category_config`` the out-of-category filter's signals, flag and reason."""
    timings = {} if timings is None else timings
    with timed(timings, "features_s"):
        rows = signals.rows(candidates.get_column("offer_id"))
        features = compute_features(
            candidates,
            signals.products,
            signals.vectors,
            profiles,
            signals.taxonomy,
            image_vectors=signals.image_vectors,
            image_ok=signals.image_ok,
            product_rows=rows,
        )
    with timed(timings, "cross_encoder_s"):
        features = add_cross_encoder_scores(features, signals.products, profiles, cross_encoder)
    if out_of_category_config is None:
        return features
    with timed(timings, "out_of_category_s"):
        with_images = signals.image_vectors is not None and signals.image_ok.sum() > 1
        flagged = out_of_category_signals(
            features,
            signals.products,
            signals.vectors,
            profiles,
            signals.taxonomy,
            title_vectors=signals.title_vectors,
            image_vectors=signals.image_vectors,
            image_ok=signals.image_ok,
            neighbours=signals.neighbours,
            title_voter=signals.voter("title"),
            product_rows=rows,
            page_relations=signals.page_relations(profiles),
            visual_voter=signals.voter("visual") if with_images else None,
        )
        return out_of_category(flagged, config=out_of_category_config)
