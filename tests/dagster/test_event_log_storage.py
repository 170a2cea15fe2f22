"""The pooled, batched SQLite event log (dagster.yaml) records exactly what Dagster's stock storage does."""

import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from resources.event_log import PooledSqliteEventLogStorage

PROJECT_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
PAGES = dg.DynamicPartitionsDefinition(name="pages")
KEYS = [f"page-{i:03d}" for i in range(30)]
RANGE = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _stage(name: str, upstream: str | None, fail: bool = False) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=[upstream] if upstream else [],
        partitions_def=PAGES,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if fail:
            raise RuntimeError("stage failed on purpose")
        return dg.MaterializeResult(metadata={"pages": len(context.partition_keys)})

    return _asset


def _job(fail_last: bool = False) -> dg.JobDefinition:
    stages = [_stage("stage_a", None), _stage("stage_b", "stage_a"), _stage("stage_c", "stage_b", fail=fail_last)]
    return dg.Definitions(assets=stages, jobs=[dg.define_asset_job("stages")]).resolve_job_def("stages")


def _instance(home: Path, pooled: bool, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    home.mkdir()
    if pooled:
        shutil.copy(PROJECT_YAML, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    instance = dg.DagsterInstance.get()
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage) == pooled
    return instance


def _what_the_ui_reads(instance: dg.DagsterInstance) -> dict[str, object]:
    """Per asset: materialized/failed partitions, latest materialization, record counts, data-version tags."""
    storage = instance.event_log_storage
    out: dict[str, object] = {}
    for name in ("stage_a", "stage_b", "stage_c"):
        key = dg.AssetKey(name)
        entry = instance.get_asset_records([key])[0].asset_entry if instance.get_asset_records([key]) else None
        records = instance.fetch_materializations(key, limit=1000).records
        planned = instance.fetch_planned_materializations(key, limit=1000).records
        status = get_and_update_asset_status_cache_value(instance, key, PAGES, dynamic_partitions_loader=instance)
        with partition_loading_context(dynamic_partitions_store=instance):
            failed = sorted(status.deserialize_failed_partition_subsets(PAGES).get_partition_keys()) if status else []
        last = entry.last_materialization_record if entry else None
        out[name] = {
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "failed": failed,
            "records": len(records),
            "planned": len(planned),
            "last_is_newest": last is not None and last.storage_id == max(r.storage_id for r in records),
            "last_run_is_latest": entry is not None and entry.last_run_id == instance.get_runs(limit=1)[0].run_id,
            "data_version_tags": len(storage.get_event_tags_for_asset(key)),
            "latest_by_partition": len(
                storage.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
            ),
        }
    return out


def _run_twice_then_fail(instance: dg.DagsterInstance) -> dict[str, object]:
    instance.add_dynamic_partitions("pages", KEYS)
    for _ in range(2):  # "latest" has to move on the second run
        assert _job().execute_in_process(instance=instance, tags=RANGE, run_config=QUIET).success
    failing = _job(fail_last=True).execute_in_process(
        instance=instance, tags=RANGE, run_config=QUIET, raise_on_error=False
    )
    assert not failing.success
    return _what_the_ui_reads(instance)


def test_pooled_storage_records_what_the_stock_storage_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stock = _run_twice_then_fail(_instance(tmp_path / "stock", pooled=False, monkeypatch=monkeypatch))
    pooled_instance = _instance(tmp_path / "pooled", pooled=True, monkeypatch=monkeypatch)
    pooled = _run_twice_then_fail(pooled_instance)

    assert pooled == stock
    assert stock["stage_a"]["records"] == 3 * len(KEYS) and stock["stage_c"]["failed"] == KEYS
    # the batch path was taken: Dagster's event batching is on in a process using this storage
    assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 0
    # same files as the stock layout, so an existing DAGSTER_HOME keeps its history
    assert (tmp_path / "pooled" / "history" / "runs" / "index.db").exists()


def test_live_run_log_watchers_see_events_written_through_pooled_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = _instance(tmp_path / "home", pooled=True, monkeypatch=monkeypatch)
    instance.add_dynamic_partitions("pages", KEYS)
    run_id = str(uuid.uuid4())
    seen: list[str] = []
    done = threading.Event()

    def callback(entry, _cursor):  # noqa: ANN001, ANN202
        seen.append(entry.dagster_event_type.value if entry.dagster_event_type else "log")
        if entry.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS:
            done.set()

    instance.watch_event_logs(run_id, None, callback)
    try:
        assert _job().execute_in_process(instance=instance, tags=RANGE, run_config=QUIET, run_id=run_id).success
        deadline = time.monotonic() + 20
        while not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        instance.end_watch_event_logs(run_id, callback)
    assert done.is_set(), f"the watcher saw only {seen[-5:]}"
    assert seen.count("ASSET_MATERIALIZATION") == 3 * len(KEYS)


def test_bad_synchronous_level_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(dg.DagsterInvalidConfigError, match="synchronous"):
        PooledSqliteEventLogStorage(str(tmp_path), synchronous="SOMETIMES")


def test_the_pooled_event_log_refuses_a_dagster_release_it_was_not_written_for():
    """Loaded under another Dagster release, the module fails at import with the dagster.yaml block to remove
    (a fresh interpreter, as the instance would load it)."""
    import subprocess
    import sys

    code = "import dagster; dagster.__version__ = '1.14.0'; import resources.event_log"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode != 0
    assert "remove the `event_log_storage:` block" in done.stderr and "Dagster 1.14.0" in done.stderr
