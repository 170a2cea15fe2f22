"""The Dagster graph on a small generated catalog in a temp data root."""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.definitions import build_resources, defs, materialize_all_pages
from assets.partitions import CATEGORY_PAGES
from seestocks_rank.storage import TableStore

PARTITIONED = ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")


def _metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_every_asset_materializes_and_checks_pass(pipeline_run):
    instance, result, _ = pipeline_run
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "product_embeddings",
        "taxonomy_centroids",
        "fusion_model",
        "analyst_database",
        *PARTITIONED,
    } <= materialized
    checks = result.get_asset_check_evaluations()
    assert checks, "asset checks should have run"
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]


def test_partitions_follow_the_category_pages(pipeline_run):
    instance, _, data_dir = pipeline_run
    pages = pl.read_csv(data_dir / "demo" / "category_pages.csv")
    keys = instance.get_dynamic_partitions(CATEGORY_PAGES)
    assert sorted(keys) == sorted(str(c) for c in pages["category_id"])
    store = TableStore(data_dir)
    for asset in PARTITIONED:
        assert sorted(p.stem for p in (store.tables_dir / asset).glob("*.parquet")) == sorted(keys)


def test_duckdb_has_rankings_for_every_active_page(pipeline_run):
    _, _, data_dir = pipeline_run
    with duckdb.connect(str(data_dir / "seestocks.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert {"rankings", "naive_rankings", "page_exclusions", "quarantine", "catalog", "filtered_rankings"} <= tables
        pages = con.execute("select count(*) from category_pages").fetchone()[0]
        ranked = con.execute("select count(distinct category_id) from rankings").fetchone()[0]
        assert ranked == pages
        cols = {r[0] for r in con.execute("describe rankings").fetchall()}
        assert {"category_id", "category_path", "rank", "product_id", "title", "retailer", "price", "score"} <= cols
        # one analyst query from the README: the exclusions by reason
        reasons = dict(con.execute("select status, count(*) from page_exclusions group by 1").fetchall())
    assert reasons.get("duplicate", 0) > 0


def test_quarantine_holds_the_bad_rows(pipeline_run):
    instance, _, data_dir = pipeline_run
    quarantine = TableStore(data_dir).read("quarantine")
    reasons = set(quarantine["reason"].str.split("; ").explode().to_list())
    assert {"missing_title", "non_positive_price", "unknown_category", "duplicate_offer"} <= reasons
    meta = _metadata(instance, "catalog")
    assert meta["quarantined"] == quarantine.height > 0


def test_reranked_pages_hold_fewer_misplaced_products_than_naive(pipeline_run):
    from seestocks_rank.report import comparison_report

    _, _, data_dir = pipeline_run
    metrics = comparison_report(data_dir, pages=[], k=10).metrics
    assert metrics["reranked"]["misplaced_share@10"] < metrics["naive"]["misplaced_share@10"] / 2
    assert metrics["reranked"]["pages_with_misplaced@10"] < metrics["naive"]["pages_with_misplaced@10"]


def test_rerun_is_incremental_and_deterministic(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(data_dir)
    before = store.read_partitions("filtered_rankings").sort("category_id", "offer_id")
    result = materialize_all_pages(instance, build_resources(str(data_dir)))
    assert result.success
    meta = _metadata(instance, "product_embeddings")
    assert meta["encoded"] == 0 and meta["reused"] == meta["rows"]
    after = store.read_partitions("filtered_rankings").sort("category_id", "offer_id")
    assert after.equals(before)


def test_one_category_can_be_backfilled_alone(pipeline_run):
    instance, _, data_dir = pipeline_run
    store = TableStore(data_dir)
    key = instance.get_dynamic_partitions(CATEGORY_PAGES)[0]
    other = instance.get_dynamic_partitions(CATEGORY_PAGES)[1]
    other_mtime = store.partition_path("filtered_rankings", other).stat().st_mtime_ns
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(a) for a in PARTITIONED]
    result = job.get_subset(asset_selection=set(selection)).execute_in_process(
        instance=instance, resources=build_resources(str(data_dir)), partition_key=key
    )
    assert result.success
    assert store.partition_path("filtered_rankings", other).stat().st_mtime_ns == other_mtime
    assert store.read_partitions("filtered_rankings", [key]).height > 0


def test_a_failed_run_keeps_the_last_good_outputs(pipeline_run, tmp_path: Path):
    instance, _, data_dir = pipeline_run
    broken_root = tmp_path / "data"
    shutil.copytree(data_dir, broken_root)
    rankings_before = TableStore(broken_root).read_partitions("filtered_rankings")
    # A catalog with the wrong schema stops the run at the catalog asset.
    catalog = pl.read_csv(broken_root / "demo" / "catalog.csv", infer_schema=False).drop("price")
    catalog.write_csv(broken_root / "demo" / "catalog.csv")
    result = materialize_all_pages(instance, build_resources(str(broken_root)), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "price" in str(failure.event_specific_data.error)
    assert TableStore(broken_root).read_partitions("filtered_rankings").equals(rankings_before)
    with duckdb.connect(str(broken_root / "seestocks.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rankings").fetchone()[0] > 0


@pytest.mark.parametrize("job_name", ["nightly_rankings", "sync_category_pages"])
def test_jobs_resolve(job_name):
    assert defs.resolve_job_def(job_name) is not None


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    lineage = [
        "product_embeddings",
        "taxonomy_centroids",
        "candidate_sets",
        "cross_encoder_features",
        "fused_scores",
        "filtered_rankings",
    ]
    for upstream, downstream in zip(lineage, lineage[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys, upstream
    for asset in PARTITIONED:
        node = graph.get(dg.AssetKey(asset))
        assert node.partitions_def is not None and node.backfill_policy == dg.BackfillPolicy.single_run()
