"""Product embeddings sharded by a hash of the offer id: one partition per shard, merged into one store."""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from assets._metadata import timed
from resources import StorageResource, TextModelResource
from seestocks_rank.retrieval.embeddings import embed_products
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.sharding import merge_shard_stores, shard_rows

if TYPE_CHECKING:
    from dagster._core.definitions.reconstruct import ReconstructableJob  # what dg.reconstructable returns
    from dagster._core.instance.ref import InstanceRef


SHARDS_ENV = "SEESTOCKS_EMBEDDING_SHARDS"


PARTITION_TAG = "dagster/partition"


def shard_count() -> int:
    """``$SEESTOCKS_EMBEDDING_SHARDS`` (default 2)."""
    value = os.environ.get(SHARDS_ENV, "").strip() or "2"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SHARDS_ENV}={value!r}: use a whole number >= 1")
    return int(value)


N_SHARDS = shard_count()


product_shards = dg.StaticPartitionsDefinition([str(i) for i in range(N_SHARDS)])


def shard_dir(storage: StorageResource, shard: str) -> Path:
    return storage.root.embedding_shards / shard


def merged_dir(storage: StorageResource) -> Path:
    return storage.root.merged_embeddings


@dg.asset(kinds={"numpy"}, partitions_def=product_shards, pool="embedding_shards")
def product_embedding_shards(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    text_model: TextModelResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    """Title embeddings of one shard's products (``fnv1a64(offer_id) % shards``), reusing the shard's
    unchanged rows from its last run and committed to the shard's own store."""
    encoder = text_model.encoder()
    totals = {"rows": 0, "encoded": 0, "reused": 0, "dropped": 0}
    timings: dict[str, float] = {}
    for key in context.partition_keys:  # one key per run, several in a single-run range backfill
        products = shard_rows(catalog, int(key), N_SHARDS)
        root = shard_dir(storage, key)
        with timed(timings, "embed_s"):
            run = embed_products(products, encoder, root, EmbeddingStore.open(root))
            run.store.commit()
        context.log.info(f"shard {key}/{N_SHARDS}: {products.height} rows, {run.encoded} encoded, {run.reused} reused")
        for name, value in (("rows", run.store.height), ("encoded", run.encoded), ("reused", run.reused),
                            ("dropped", run.dropped)):  # fmt: skip
            totals[name] += value
    return dg.MaterializeResult(
        metadata={
            **totals,
            "shards": N_SHARDS,
            "catalog_rows": catalog.height,
            "model_version": encoder.model_version,
            "store": dg.MetadataValue.path(str(shard_dir(storage, context.partition_keys[0]))),
            **timings,
        }
    )


@dg.asset(kinds={"numpy"}, deps=[product_embedding_shards])
def merged_product_embeddings(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """Every shard's vectors as one store (chunks hard-linked, manifests concatenated), readable with
    ``EmbeddingStore.open`` like ``product_embeddings``'."""
    timings: dict[str, float] = {}
    keys = product_shards.get_partition_keys()
    with timed(timings, "merge_s"):
        store = merge_shard_stores([shard_dir(storage, k) for k in keys], merged_dir(storage))
    return dg.MaterializeResult(
        metadata={
            "rows": store.height,
            "shards": len(keys),
            "chunks": store.manifest.get_column("chunk").n_unique(),
            "dim": store.dim,
            "manifest": dg.MetadataValue.path(str(merged_dir(storage) / "manifest.parquet")),
            **timings,
        }
    )


# Jobs over every asset must leave these out: an asset job's partitioned assets must share one partitions
# definition, and the category-page assets have another (``AssetSelection.all() - SHARDED_ASSETS``).
SHARDED_ASSETS = dg.AssetSelection.assets(product_embedding_shards, merged_product_embeddings)


sharded_embeddings_job = dg.define_asset_job(
    "sharded_embeddings",
    selection=SHARDED_ASSETS,
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    description="Product embeddings by shard (one partition per run), then the merged store.",
)


def _execute(
    job: "ReconstructableJob", instance_ref: "InstanceRef", tags: dict, selection: list, run_config: dict | None
) -> str:
    """One run in this (fresh) process, as the default run launcher would start it; returns its id."""
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        result = dg.execute_job(job, instance, run_config=run_config, tags=tags, asset_selection=selection)
        return result.run_id


def run_sharded_embeddings(
    job: "ReconstructableJob",
    instance: dg.DagsterInstance,
    *,
    shards: list[str] | None = None,
    max_concurrent_runs: int | None = None,
    run_config: dict | None = None,
) -> list[dg.DagsterRun]:
    """Run ``sharded_embeddings`` as a backfill would: one run per shard partition, each in its own process
    and all at once (up to ``max_concurrent_runs``), with the job's multiprocess executor; then, if they all
    succeeded, one run of the merge. ``job`` must be reconstructable (``dg.reconstructable(fn)`` of a
    module-level function returning the job) and ``instance`` persistent. Returns the runs, merge last."""
    keys = shards or product_shards.get_partition_keys()
    ref = instance.get_ref()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max_concurrent_runs or len(keys), mp_context=spawn) as pool:
        futures = [
            pool.submit(_execute, job, ref, {PARTITION_TAG: key}, [product_embedding_shards.key], run_config)
            for key in keys
        ]
        run_ids = [f.result() for f in futures]
    runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    if all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
        merge = dg.execute_job(job, instance, run_config=run_config, asset_selection=[merged_product_embeddings.key])
        runs.append(instance.get_run_by_id(merge.run_id))
    return runs
