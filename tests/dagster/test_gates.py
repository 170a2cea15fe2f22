"""Gates: a failed blocking check stops the run before the analysts' file is replaced (ranking checks, feed
checks), and the published file is self-contained (a copy reads alone)."""

import hashlib
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

import assets.rules
from assets.definitions import build_resources, defs
from assets.runner import failure_summary, materialize_all_pages
from resources import RankingSettings
from resources.data_root import DEADLINE_TAG, MAX_RUNTIME_TAG
from seestocks_rank.publication.schema import VIEWS
from tests.dagster.conftest import FAST_SETTINGS

STEPS_NOT_RUN = {"analyst_database"}


def _copy(pipeline_run, tmp_path: Path) -> tuple[dg.DagsterInstance, Path, str]:
    """A copy of the ranked data root and an instance of its own (the session's instance stays as it was)."""
    _, _, data_dir = pipeline_run
    root = tmp_path / "data"
    shutil.copytree(data_dir, root)
    return dg.DagsterInstance.ephemeral(), root, hashlib.sha256((root / "seestocks.duckdb").read_bytes()).hexdigest()


def _published(root: Path) -> str:
    return hashlib.sha256((root / "seestocks.duckdb").read_bytes()).hexdigest()


def _failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_check_evaluation_data.check_name for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            and not e.asset_check_evaluation_data.passed}  # fmt: skip


def _ran(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}


def test_a_failed_ranking_check_keeps_the_last_good_file(pipeline_run, tmp_path: Path, monkeypatch):
    instance, root, before = _copy(pipeline_run, tmp_path)
    rank_pages = assets.rules.rank_pages

    def duplicated(*args, **kwargs) -> pl.DataFrame:  # a bug that shows one offer twice on a page
        ranked = rank_pages(*args, **kwargs)
        return pl.concat([ranked, ranked.filter(pl.col("rank") == 1)])

    monkeypatch.setattr(assets.rules, "rank_pages", duplicated)
    result = materialize_all_pages(instance, build_resources(str(root), FAST_SETTINGS), raise_on_error=False)
    assert not result.success
    assert "no_duplicate_product_in_page" in _failed_checks(result)
    assert not STEPS_NOT_RUN & _ran(result) and _published(root) == before


@pytest.mark.parametrize(
    ("change", "settings", "check"),
    [
        (lambda c: c, RankingSettings(cross_encoder_minutes=0.05, max_quarantined_share=0.0001),
         "quarantined_share_within_bounds"),
        (lambda c: c.head(c.height // 4), FAST_SETTINGS, "product_count_within_bounds_of_last_run"),
    ],
)  # fmt: skip
def test_a_broken_feed_stops_the_run_before_any_page_is_ranked(pipeline_run, tmp_path: Path, change, settings, check):
    instance, root, before = _copy(pipeline_run, tmp_path)
    catalog = pl.read_csv(root / "demo" / "catalog.csv", infer_schema=False)
    change(catalog).write_csv(root / "demo" / "catalog.csv")
    result = materialize_all_pages(instance, build_resources(str(root), settings), raise_on_error=False)
    assert not result.success and check in _failed_checks(result)
    assert not {"candidate_sets", "filtered_rankings", "analyst_database"} & _ran(result)
    assert _published(root) == before


def test_a_copied_file_reads_alone(pipeline_run, tmp_path: Path):
    _, _, data_dir = pipeline_run
    copy = tmp_path / "elsewhere" / "seestocks.duckdb"
    copy.parent.mkdir()
    shutil.copy(data_dir / "seestocks.duckdb", copy)
    moved = tmp_path / "moved"
    shutil.copytree(data_dir, moved)  # the original data root is read through a copy only
    with duckdb.connect(str(copy), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        for table in tables:  # every table and view reads in the copy: no view over files outside it
            con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
    assert views == set(VIEWS) and {"rankings", "filtered_rankings", "candidate_sets"} <= set(tables)


def test_the_instance_retries_failed_runs_and_bounds_their_run_time():
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        shutil.copy(Path(__file__).parents[2] / "dagster.yaml", Path(home) / "dagster.yaml")
        with dg.DagsterInstance.from_config(home) as instance:
            assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
            assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 21600
            assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"


def test_a_run_past_its_deadline_publishes_nothing(pipeline_run, tmp_path: Path):
    instance, root, before = _copy(pipeline_run, tmp_path)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("analyst_database")})
    result = job.execute_in_process(
        instance=instance,
        resources=build_resources(str(root), FAST_SETTINGS),
        tags={DEADLINE_TAG: f"{time.time() - 1:.3f}", MAX_RUNTIME_TAG: "30"},
        raise_on_error=False,
    )
    assert not result.success and _published(root) == before
    assert "maximum run time of 30 minutes" in failure_summary(result)[0]
