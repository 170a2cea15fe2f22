"""A backfill of pages by name from the command line: ``seestocks-rank run --page 'Tool Bags' --page 6016``
(real processes) re-ranks those pages only, then re-publishes."""

from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.tables import TableStore
from seestocks_rank.synthetic.demo import generate_demo
from tests.operations.support import new_dagster_home, pipeline_env, run_cli


def test_pages_are_backfilled_by_name_and_republished(tmp_path: Path, monkeypatch):
    root = tmp_path / "data"
    generate_demo(root / "demo", n_products=600, n_retailers=3, seed=3)
    env = pipeline_env(root, new_dagster_home(root / "dagster_home"), SEESTOCKS_PROGRESS_SECONDS="0")
    assert run_cli(env, "run").returncode == 0
    store = TableStore(DataRoot.at(root).tables)
    before = store.partition_index("filtered_rankings")
    published_before = (root / "seestocks.duckdb").stat().st_mtime_ns

    done = run_cli(env, "run", "--page", "Tool Bags", "--page", "6016")
    assert done.returncode == 0, done.stderr[-2000:]
    after = store.partition_index("filtered_rankings")
    moved = after.join(before, on="partition", suffix="_before").filter(pl.col("file") != pl.col("file_before"))
    assert sorted(moved.get_column("partition").to_list()) == ["4283", "6016"]  # those two pages only
    assert (root / "seestocks.duckdb").stat().st_mtime_ns > published_before
    with duckdb.connect(str(root / "seestocks.duckdb"), read_only=True) as con:
        shown = con.execute("SELECT count(*) FROM rankings WHERE category_id = 4283").fetchone()[0]
        assert shown > 0

    # the UI shows each backfilled page's own row count (a run of a few pages), with the column schema
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's storage is under $DAGSTER_HOME
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("filtered_rankings"))
        metadata = event.asset_materialization.metadata
        assert event.asset_materialization.partition.split("-")[0] in ("4283", "6016")
        assert metadata["dagster/partition_row_count"].value > 0
        assert "status" in {c.name for c in metadata["dagster/column_schema"].value.columns}
        # the library's progress lines are in the runs' event logs (what the UI shows in a run's logs)
        messages = [r.event_log_entry.user_message for r in instance.get_records_for_run(event.run_id).records]
        first_run = instance.get_runs(limit=10)[-1]
        first = [r.event_log_entry.user_message for r in instance.get_records_for_run(first_run.run_id).records]
        assert any(m.startswith("encoding products: ") and "/s" in m for m in first), first[:20]
        assert any("filtered_rankings" in m for m in messages)

    unknown = run_cli(env, "run", "--page", "Moon Rocks")
    assert unknown.returncode == 2 and "no active page 'Moon Rocks'" in unknown.stderr
