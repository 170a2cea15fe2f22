"""The analysts' DuckDB file: the one writer. It runs at the end of every nightly run and, through its
automation condition, after a backfill of selected pages (once the backfill's runs are done and their
blocking checks passed), so analysts always read one consistent, self-contained snapshot."""

from datetime import timedelta

import dagster as dg
import polars as pl

from assets.partitions import pages_in_flight
from resources import RankingSettings, StorageResource
from seestocks_rank.publication import INPUT_TABLES, PAGE_TABLES, analyst_tables
from seestocks_rank.store.alerts import read_failures
from seestocks_rank.store.embedding_store import MANIFEST
from seestocks_rank.store.publication import publish_duckdb

AC = dg.AutomationCondition
# Re-publish when anything it publishes was updated by a run that did not publish (a backfill of pages),
# once no upstream run is in flight and every upstream blocking check passed; a page that was never ranked
# (a page just added) does not hold the publication back.
PUBLICATION_CONDITION = (AC.eager().without(~AC.any_deps_missing()) & AC.all_deps_blocking_checks_passed()).with_label(
    "publish after ranking runs"
)


@dg.asset(
    kinds={"duckdb"},
    deps=[*PAGE_TABLES, *INPUT_TABLES, "category_pages", "product_embeddings", "taxonomy_centroids"],
    automation_condition=PUBLICATION_CONDITION,
    # analysts are told when their file is stale: re-published at least once a day (the daemon evaluates it)
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)),
    check_specs=[dg.AssetCheckSpec("every_active_page_ranked", asset="analyst_database")],
)
def analyst_database(context: dg.AssetExecutionContext, storage: StorageResource, settings: RankingSettings):
    """Rebuild ``<data root>/seestocks.duckdb`` (see :func:`seestocks_rank.publication.analyst_tables`) and
    swap it in atomically. An active page without a ranking is left out; the check fails for one unless a
    queued or running run will rank it (a page added since the last run) or it has no partition yet."""
    manifest = pl.read_parquet(storage.root.embeddings / MANIFEST)
    built = analyst_tables(storage.tables, manifest, settings.page_size)
    tables = dict(built.tables)
    failures = read_failures(storage.root.alerts)
    if failures is not None:
        tables["run_failures"] = failures
    counts = publish_duckdb(storage.root.duckdb, tables)
    coming = pages_in_flight(context.instance, exclude_run_id=context.run_id)
    waiting = built.unranked.filter(pl.col("category_id").is_in(list(coming)) | pl.col("page_key").is_null())
    missing = built.unranked.join(waiting, on="category_id", how="anti")
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(storage.root.duckdb)),
            "dagster/row_count": counts.get("rankings", 0),
            "tables": dg.MetadataValue.json(counts),
            "pages_published": tables["category_pages"].height,
            "pages_waiting_for_a_run": waiting.height,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_active_page_ranked",
                passed=missing.height == 0,
                metadata={
                    "pages_published": tables["category_pages"].height,
                    "pages_waiting_for_a_run": dg.MetadataValue.json(waiting.get_column("category_id").to_list()[:50]),
                    "pages_without_ranking": dg.MetadataValue.json(missing.get_column("category_id").to_list()[:50]),
                },
            )
        ],
    )
