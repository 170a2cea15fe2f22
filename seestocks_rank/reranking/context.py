"""The catalog-wide inputs of the scoring stage, built once per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.embeddings import image_vectors
from seestocks_rank.store.embedding_store import EmbeddingStore


@dataclass
class CatalogContext:
    """The catalog-wide inputs of scoring, built once per run and shared by every page and stage that
    scores: products (``offer_id, title, category_id, price, predicted_category_id`` and the offer
    columns the rules show) row-aligned with their retrieval vectors (``vectors``), and with the title
    and image vectors when the catalog has images."""

    products: pl.DataFrame
    vectors: np.ndarray
    taxonomy: Taxonomy
    title_vectors: np.ndarray | None = None
    image_vectors: np.ndarray | None = None
    image_ok: np.ndarray | None = None
    _sorted_ids: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, catalog: pl.DataFrame, store: EmbeddingStore, taxonomy: Taxonomy, predicted: pl.DataFrame | None = None
    ) -> CatalogContext:
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

    def image_rows(self) -> np.ndarray:
        """Which rows have an image vector (all False for a text-only catalog)."""
        if self.image_vectors is None:
            return np.zeros(self.products.height, dtype=bool)
        return np.ones(len(self.image_vectors), bool) if self.image_ok is None else np.asarray(self.image_ok, bool)

    @property
    def reference_time(self) -> datetime | None:
        """The catalog's latest ``last_seen``: the crawl time freshness is measured from."""
        return self.products.get_column("last_seen").max() if "last_seen" in self.products.columns else None

    def rows(self, offer_ids: pl.Series) -> np.ndarray:
        """Row of each offer in ``products``, by binary search (no join against the whole catalog, so
        scoring one page costs what its rows cost); raises naming an unknown offer."""
        if self._sorted_ids is None:
            ids = self.products.get_column("offer_id").to_numpy().astype(str)
            order = np.argsort(ids, kind="stable")
            self._sorted_ids = (ids[order], order)
        sorted_ids, order = self._sorted_ids
        wanted = offer_ids.to_numpy().astype(str)
        pos = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
        bad = (sorted_ids[pos] != wanted) if len(sorted_ids) else np.ones(len(wanted), dtype=bool)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} offer(s) are not in the catalog, e.g. {wanted[np.argmax(bad)]!r}")
        return order[pos]
