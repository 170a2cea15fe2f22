"""Where the pipeline's inputs and outputs live: one data root (``./data`` or ``SEESTOCKS_DATA_DIR``)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from seestocks_rank.store.model_cache import CachedCrossEncoder, CachedTextEncoder
from seestocks_rank.store.tables import TableStore, write_parquet_atomic

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> str:
    """``$SEESTOCKS_DATA_DIR``, else ``data/`` in the project root."""
    return os.environ.get("SEESTOCKS_DATA_DIR") or str(PROJECT_ROOT / "data")


class StorageResource(dg.ConfigurableResource):
    """The data root: Parquet tables under ``tables/``, product vectors under ``embeddings/``, models
    under ``models/``, model outputs kept between runs under ``cache/``, the analysts' DuckDB file at
    ``seestocks.duckdb``. ``cache_days``: cached texts unused this long are dropped."""

    root: str
    cache_days: float = 7.0

    @property
    def store(self) -> TableStore:
        return TableStore(self.root)

    @property
    def duckdb_path(self) -> Path:
        return Path(self.root) / "seestocks.duckdb"

    @property
    def embeddings_dir(self) -> Path:
        return Path(self.root) / "embeddings"

    @property
    def models_dir(self) -> Path:
        return Path(self.root) / "models"

    @property
    def cache_dir(self) -> Path:
        return Path(self.root) / "cache"

    def _read_cache(self, name: str) -> pl.DataFrame | None:
        path = self.cache_dir / f"{name}.parquet"
        return pl.read_parquet(path) if path.exists() else None

    def _write_cache(self, name: str, cache: CachedCrossEncoder | CachedTextEncoder) -> None:
        if cache.computed or cache.reused:
            write_parquet_atomic(cache.kept(self.cache_days), self.cache_dir / f"{name}.parquet")

    @contextmanager
    def cached_cross_encoder(self, model: object | None) -> Iterator[CachedCrossEncoder | None]:
        """``model`` answering pairs scored on earlier runs from ``cache/cross_encoder_scores.parquet``
        (written back when the block succeeds). ``None`` stays ``None``."""
        if model is None:
            yield None
            return
        cache = CachedCrossEncoder(model, self._read_cache("cross_encoder_scores"))
        yield cache
        self._write_cache("cross_encoder_scores", cache)

    @contextmanager
    def cached_text_encoder(self, encoder: object) -> Iterator[CachedTextEncoder]:
        """``encoder`` answering texts embedded on earlier runs (prompts, judged titles) from
        ``cache/text_vectors.parquet`` (written back when the block succeeds)."""
        cache = CachedTextEncoder(encoder, self._read_cache("text_vectors"))
        yield cache
        self._write_cache("text_vectors", cache)


class InputsResource(dg.ConfigurableResource):
    """Input files. Any left empty defaults to the embedded demo under ``<data root>/demo/``.

    - ``catalog``: Parquet or CSV in the catalog contract (see README)
    - ``taxonomy``: Google ``taxonomy-with-ids`` text file
    - ``category_pages``: CSV/Parquet with a ``category_id`` column (the active pages)
    - ``judgments``: CSV/Parquet with ``category_id, product_id, grade``
    """

    data_root: str
    catalog: str = ""
    taxonomy: str = ""
    category_pages: str = ""
    judgments: str = ""

    def _path(self, value: str, demo_name: str) -> Path:
        return Path(value) if value else Path(self.data_root) / "demo" / demo_name

    @property
    def catalog_path(self) -> Path:
        return self._path(self.catalog, "catalog.csv")

    @property
    def taxonomy_path(self) -> Path:
        return self._path(self.taxonomy, "taxonomy.txt")

    @property
    def category_pages_path(self) -> Path:
        return self._path(self.category_pages, "category_pages.csv")

    @property
    def judgments_path(self) -> Path:
        return self._path(self.judgments, "judgments.csv")
