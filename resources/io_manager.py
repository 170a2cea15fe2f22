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
from seestocks_rank.publication.schema import column_comment
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.tables import TableStore

_PAGE_KEY = re.compile(r"^\d+-")
# Dagster copies a multi-partition output's metadata into every partition's materialization event: a
# Markdown preview on a run over 1,347 pages is written 1,347 times. Previews go only on small runs.
MAX_PAGES_WITH_PREVIEW = 10


def column_schema(df: pl.DataFrame) -> dg.TableSchema:
    """The standard ``dagster/column_schema`` of a table: its columns, types and documentation."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(dtype), description=column_comment(name) or "")
            for name, dtype in df.schema.items()
        ]
    )


def table_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


def stored_partitions(keys: list[str]) -> list[str]:
    """Where partitions' rows live in the table store: a category page's key (``4283-tool-bags``) under its
    category id, which is the rows' ``category_id`` and does not change when a page is renamed; other keys
    as they are."""
    return [str(page_id(k)) if _PAGE_KEY.match(k) else k for k in keys]


def _partition_row_counts(context: dg.OutputContext, obj: pl.DataFrame, keys: list[str]) -> None:
    """Each page's own ``dagster/partition_row_count``, on runs of a few pages: Dagster re-resolves the whole
    partition range for every per-partition entry (quadratic in the run's pages), so a nightly over every
    page reports ``rows_in_run`` only and the page counts live in DuckDB's page_health."""
    step = getattr(context, "step_context", None)
    if step is None or len(keys) > MAX_PAGES_WITH_PREVIEW or "category_id" not in obj.columns:
        return
    counts = dict(obj.group_by("category_id").len().iter_rows())
    for key, stored in zip(keys, stored_partitions(keys), strict=True):
        if stored.isdigit():
            step.add_asset_metadata({"dagster/partition_row_count": counts.get(int(stored), 0)},
                                    asset_key=context.asset_key, partition_key=key)  # fmt: skip


class ParquetIOManager(dg.ConfigurableIOManager):
    data_root: DataRootResource

    @property
    def store(self) -> TableStore:
        return TableStore(self.data_root.root.tables)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        name = table_name(context.asset_key)
        standard = {"dagster/column_schema": column_schema(obj), "dagster/table_name": name}
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            rows = self.store.write_partitions(name, obj, stored_partitions(keys))
            context.add_output_metadata({**standard, "partitions_written": len(rows), "rows_in_run": obj.height})
            _partition_row_counts(context, obj, keys)
        else:
            path = self.store.write(name, obj)
            context.add_output_metadata(
                {
                    **standard,
                    "dagster/row_count": obj.height,
                    "dagster/uri": str(path),
                    "path": dg.MetadataValue.path(str(path)),
                }  # fmt: skip
            )

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
