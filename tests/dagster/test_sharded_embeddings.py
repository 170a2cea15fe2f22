"""Sharded product embeddings: the shard partitions run at the same time (one run each, steps in the
multiprocess executor's subprocesses, a persistent instance), and the merged store holds exactly the
vectors of one unsharded run."""

import os
import time

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets import inputs
from assets import sharding as sharded
from resources import (
    ComputeResource,
    DataRootResource,
    InputsResource,
    ParquetIOManager,
    RankingSettings,
    StorageResource,
    TextModelResource,
)
from seestocks_rank.models.encoders import HashingEncoder
from seestocks_rank.retrieval.embeddings import embed_products
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.sharding import merge_shard_stores, shard_of, shard_rows, stable_hash
from seestocks_rank.store.tables import TableStore
from seestocks_rank.synthetic.demo import generate_demo

DATA_DIR_ENV = "SEESTOCKS_DATA_DIR"


def _resources(root: str) -> dict[str, object]:
    """What ``build_resources(root)`` gives these assets, with the hashing text encoder. Built here rather
    than imported from ``assets.definitions``: every run and step process re-imports this module, and the
    whole code location (lightgbm, sklearn) costs ~3 s per import."""
    data_root = DataRootResource(path=root)
    return {
        "io_manager": ParquetIOManager(data_root=data_root),
        "storage": StorageResource(data_root=data_root),
        "inputs": InputsResource(data_root=data_root),
        "text_model": TextModelResource(compute=ComputeResource(), kind="hashing"),
        "settings": RankingSettings(),
    }


def sharded_job() -> dg.JobDefinition:
    """The job, rebuilt in every run and step process (the multiprocess executor needs a reconstructable
    job): the data root and the shard count come from the environment the test sets, which they inherit."""
    defs = dg.Definitions(
        assets=dg.load_assets_from_modules([inputs, sharded]),
        jobs=[sharded.sharded_embeddings_job],
        resources=_resources(os.environ[DATA_DIR_ENV]),
    )
    return defs.resolve_job_def("sharded_embeddings")


def _metadata(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, object]:
    """The metadata of the run's one materialization."""
    (record,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _run_window(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[float, float]:
    record = instance.get_run_record_by_id(run.run_id)
    return record.start_time, record.end_time


def _step_seconds(instance: dg.DagsterInstance, run: dg.DagsterRun) -> float:
    """Wall seconds inside the run's step (the rest of a run is process start-up and bookkeeping)."""
    times = {e.dagster_event.event_type_value: e.timestamp for e in instance.all_logs(run.run_id) if e.dagster_event}
    return times["STEP_SUCCESS"] - times["STEP_START"]


def test_shard_of_is_fnv1a_of_the_utf8_bytes():
    ids = pl.Series(["", "a", "foobar", "r1|sku-1", "é|日本"])
    assert stable_hash(ids)[:3].tolist() == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]
    many = pl.Series([f"retailer_{i % 3}|{i * 7919}" for i in range(2000)])
    shards = shard_of(many, 4)
    assert np.array_equal(shard_of(many.reverse(), 4), shards[::-1])  # per id, not per position or batch
    assert np.array_equal(shard_of(many.slice(500, 700), 4), shards[500:1200])
    assert np.bincount(shards, minlength=4).min() > 400


def test_merge_refuses_shards_of_different_models(tmp_path):
    catalog = pl.DataFrame({"offer_id": [f"r|{i}" for i in range(40)], "title": [f"red shoe {i}" for i in range(40)],
                            "image_path": [None] * 40}, schema_overrides={"image_path": pl.String})  # fmt: skip
    for shard, encoder in ((0, HashingEncoder(dim=16)), (1, HashingEncoder(dim=16, seed=1))):
        embed_products(shard_rows(catalog, shard, 2), encoder, tmp_path / str(shard)).store.commit()
    with pytest.raises(ValueError, match="different models"):
        merge_shard_stores([tmp_path / "0", tmp_path / "1"], tmp_path / "merged")


def test_shards_run_in_parallel_and_merge_to_the_unsharded_vectors(tmp_path, monkeypatch):
    n_shards = sharded.N_SHARDS
    if n_shards < 2:
        pytest.skip(f"{sharded.SHARDS_ENV}={n_shards}: nothing runs in parallel")
    generate_demo(tmp_path / "demo", n_products=400, n_retailers=3, seed=3)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(sharded.SHARDS_ENV, str(n_shards))  # the step subprocesses must agree with this one
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        upstream = dg.materialize([inputs.taxonomy, inputs.catalog], resources=_resources(str(tmp_path)),
                                  instance=instance)  # fmt: skip
        assert upstream.success
        job = dg.reconstructable(sharded_job)

        start = time.perf_counter()
        first = sharded.run_sharded_embeddings(job, instance)
        first_s = time.perf_counter() - start
        assert len(first) == n_shards + 1 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in first)
        shard_runs, merge_run = first[:n_shards], first[-1]
        assert [r.tags[sharded.PARTITION_TAG] for r in shard_runs] == sharded.product_shards.get_partition_keys()
        assert "multiprocess" in str([e.message for e in instance.all_logs(shard_runs[0].run_id)])
        windows = [_run_window(instance, r) for r in shard_runs]
        overlap = min(end for _, end in windows) - max(begin for begin, _ in windows)
        assert overlap > 0, f"the shard runs did not overlap: {windows}"

        catalog = TableStore(DataRoot.at(tmp_path).tables).read("catalog")
        shard_meta = [_metadata(instance, r) for r in shard_runs]
        rows = [m["rows"] for m in shard_meta]
        assert min(rows) > 0 and sum(rows) == catalog.height
        assert [m["encoded"] for m in shard_meta] == rows
        assert _metadata(instance, merge_run)["rows"] == catalog.height

        merged = EmbeddingStore.open(DataRoot.at(tmp_path).merged_embeddings)
        single = embed_products(catalog, HashingEncoder(), tmp_path / "unsharded").store
        ids = catalog.get_column("offer_id").sort()
        assert merged.manifest.get_column("offer_id").equals(ids)
        for kind in ("text", "fused"):
            np.testing.assert_array_equal(merged.vectors(kind, ids), single.vectors(kind, ids))

        start = time.perf_counter()
        again = sharded.run_sharded_embeddings(job, instance)
        again_s = time.perf_counter() - start
        assert len(again) == n_shards + 1 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in again)
        assert [_metadata(instance, r)["encoded"] for r in again[:n_shards]] == [0] * n_shards
        assert [_metadata(instance, r)["reused"] for r in again[:n_shards]] == rows
        remerged = EmbeddingStore.open(DataRoot.at(tmp_path).merged_embeddings)
        np.testing.assert_array_equal(remerged.vectors("text", ids), single.vectors("text", ids))
        steps = [round(_step_seconds(instance, r), 2) for r in first]
    print(
        f"sharded embeddings: {n_shards} shards {rows} of {catalog.height} rows; first run {first_s:.1f} s "
        f"(steps {steps} s, shard runs overlapped {overlap:.1f} s), re-run {again_s:.1f} s"
    )
