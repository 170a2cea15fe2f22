"""The catalog-wide inputs of the scoring stage, built once per run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.neighbours import NeighbourVote
from seestocks_rank.reranking.out_of_category import (
    related_pages,
)
from seestocks_rank.retrieval.embeddings import image_vectors
from seestocks_rank.store.embedding_store import EmbeddingStore


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

    def page_relations(self, centroids: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~seestocks_rank.categorize.related_pages` of ``centroids``, computed once per set of pages."""
        ids = centroids.get_column("category_id").to_numpy()
        key = f"_pages_{hashlib.sha1(ids.tobytes()).hexdigest()}"
        if key not in self._cache:
            self._cache[key] = related_pages(centroids, self.taxonomy)
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
