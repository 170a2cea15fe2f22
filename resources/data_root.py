"""Where the pipeline's inputs and outputs live: one data root, shared by every resource that reads or
writes under it (``DataRootResource``, nested in the others)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.model_cache import CachedCrossEncoder, CachedTextEncoder
from seestocks_rank.store.tables import TableStore, write_parquet_atomic


class DataRootResource(dg.ConfigurableResource):
    """The data root (:class:`~seestocks_rank.store.layout.DataRoot`): ``path``, or when empty
    ``$SEESTOCKS_DATA_DIR``, else ``./data`` in the working directory."""

    path: str = ""

    @property
    def root(self) -> DataRoot:
        return DataRoot.at(self.path)


class StorageResource(dg.ConfigurableResource):
    """Tables, vectors, models and the model cache under the data root. ``cache_days``: cached model
    outputs unused this long are dropped."""

    data_root: DataRootResource
    cache_days: float = 7.0

    @property
    def root(self) -> DataRoot:
        return self.data_root.root

    @property
    def tables(self) -> TableStore:
        return TableStore(self.root.tables)

    def _read_cache(self, name: str) -> pl.DataFrame | None:
        path = self.root.cache / f"{name}.parquet"
        return pl.read_parquet(path) if path.exists() else None

    def _write_cache(self, name: str, cache: CachedCrossEncoder | CachedTextEncoder) -> None:
        if cache.computed or cache.reused:
            write_parquet_atomic(cache.kept(self.cache_days), self.root.cache / f"{name}.parquet")

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

    data_root: DataRootResource
    catalog: str = ""
    taxonomy: str = ""
    category_pages: str = ""
    judgments: str = ""

    def _path(self, value: str, demo_name: str) -> Path:
        return Path(value) if value else self.data_root.root.demo / demo_name

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
