"""IO manager: assets return polars DataFrames and this decides where they live.

Unpartitioned assets are one Parquet file; category-partitioned assets are one Parquet file per
category page, split by ``category_id`` (a single-run backfill hands over many partitions at once).
Every write is atomic, so a failed run never destroys the last good output.
"""

import re
from pathlib import Path

import dagster as dg
import polars as pl

from resources.data_root import DataRootResource
from seestocks_rank.inputs.pages import page_id
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.tables import TableStore

_PAGE_KEY = re.compile(r"^\d+-")


def table_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


def stored_partitions(keys: list[str]) -> list[str]:
    """Where partitions' rows live in the table store: a category page's key (``4283-tool-bags``) under its
    category id, which is the rows' ``category_id`` and does not change when a page is renamed; other keys
    as they are."""
    return [str(page_id(k)) if _PAGE_KEY.match(k) else k for k in keys]


class ParquetIOManager(dg.ConfigurableIOManager):
    data_root: DataRootResource

    @property
    def store(self) -> TableStore:
        return TableStore(self.data_root.root.tables)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        name = table_name(context.asset_key)
        if context.has_asset_partitions:
            rows = self.store.write_partitions(name, obj, stored_partitions(context.asset_partition_keys))
            context.add_output_metadata({"partitions_written": len(rows)})
        else:
            path = self.store.write(name, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        name = table_name(context.asset_key)
        if context.has_asset_partitions:  # the upstream asset is partitioned: read the mapped partitions
            return self.store.read_partitions(name, stored_partitions(context.asset_partition_keys))
        return self.store.read(name)


class EmbeddingStoreIOManager(dg.ConfigurableIOManager):
    """``product_embeddings`` is an :class:`EmbeddingStore` under ``<root>/embeddings``: its chunks are
    written while the asset runs, and storing the output commits the manifest (atomically)."""

    data_root: DataRootResource

    @property
    def folder(self) -> Path:
        return self.data_root.root.embeddings

    def handle_output(self, context: dg.OutputContext, obj: EmbeddingStore) -> None:
        path = obj.commit()
        context.add_output_metadata({"manifest": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> EmbeddingStore:
        store = EmbeddingStore.open(self.folder)
        if store is None:
            raise FileNotFoundError(f"no product embeddings under {self.folder}: materialize product_embeddings")
        return store
