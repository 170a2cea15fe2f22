"""The three ways users run the pipeline, together, with the real daemon: ``dagster dev`` (webserver and
daemon) ranks a fresh deployment by itself, a backfill of two pages launched as the UI launches it is
re-published for analysts automatically, and a nightly run survives pages retired (first, last, middle)
and added while it runs; meanwhile an analyst reads the DuckDB file read-only and never sees it
inconsistent."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.automation import nightly_schedule
from assets.partitions import CATEGORY_PAGES, page_ids
from tests.operations.support import PAGE_TABLES, Analyst, DagsterDev, new_dagster_home, pipeline_env, wait_for

DONE = ("SUCCESS", "FAILURE", "CANCELED")


def _finished(dev: DagsterDev) -> list[dict]:
    runs = dev.runs()
    return runs if runs and all(r["status"] in DONE for r in runs) else []


def _publications(instance: dg.DagsterInstance) -> int:
    return len(instance.fetch_materializations(dg.AssetKey("analyst_database"), limit=100).records)


def test_daemon_ranks_backfills_and_survives_page_changes_while_analysts_read(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = new_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # this process reads the same instance as the daemon
    env = pipeline_env(demo_root, home, SEESTOCKS_SENSOR_SECONDS="3")
    db = demo_root / "seestocks.duckdb"
    pages_file = demo_root / "demo" / "category_pages.csv"
    analyst = Analyst(db)
    with (
        DagsterDev(env, tmp_path / "dagster_dev.log") as dev,
        dg.DagsterInstance.from_config(str(home)) as instance,
        analyst.stopped_at_exit(),
    ):
        # A fresh deployment: the pages sensor registers the pages and requests their run; nobody clicks.
        wait_for(lambda: db.exists() and _finished(dev), 420, "the first run of a fresh deployment")
        runs = dev.runs()
        described = [(r["jobName"], r["status"], {k: v for k, v in r["tags"].items() if "/" in k}) for r in runs]
        assert len(runs) == 1, described
        [first] = runs
        assert first["status"] == "SUCCESS" and first["jobName"] == "nightly_rankings"
        analyst.start()

        # A backfill of two pages from the UI: one run, then the publication re-runs by itself.
        keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
        published = _publications(instance)
        backfill = dev.launch_backfill(list(PAGE_TABLES), keys[3:5])
        wait_for(lambda: dev.backfill_status(backfill) not in ("REQUESTED", "CANCELING", "FAILING"), 300, "backfill")
        assert dev.backfill_status(backfill) == "COMPLETED_SUCCESS"
        wait_for(lambda: _publications(instance) > published and _finished(dev), 300, "the automatic publication")

        # The nightly run, launched as the schedule launches it; pages change while it runs.
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC)) as context:
            request = nightly_schedule(context)
        nightly = dev.launch_job("nightly_rankings", request.tags)
        status = lambda: next(r for r in dev.runs() if r["runId"] == nightly)["status"]  # noqa: E731
        wait_for(lambda: status() in ("STARTED", "SUCCESS"), 120, "the nightly to start", poll=0.3)
        ids = pl.read_csv(pages_file)["category_id"].to_list()
        retired = [ids[0], ids[len(ids) // 2], ids[-1]]
        added = 2165  # Audio Components: a taxonomy node that had no page
        kept = [c for c in ids if c not in retired] + [added]
        pl.DataFrame({"category_id": kept}).write_csv(pages_file)
        wait_for(lambda: _finished(dev) and sorted(page_ids(instance.get_dynamic_partitions(CATEGORY_PAGES)))
                 == sorted(kept), 600, "the page changes to be ranked and retired")  # fmt: skip
        runs = {r["runId"]: r for r in dev.runs()}

    assert runs[nightly]["status"] == "SUCCESS", "a nightly run must not fail when pages change during it"
    assert all(r["status"] == "SUCCESS" for r in runs.values()), [(r["jobName"], r["status"]) for r in runs.values()]
    assert analyst.reads > 20 and analyst.problems == []
    with duckdb.connect(str(db), read_only=True) as con:
        published_pages = sorted(r[0] for r in con.execute("SELECT category_id FROM category_pages").fetchall())
    assert published_pages == sorted(kept)
