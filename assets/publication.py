"""The analysts' DuckDB file: the one writer. It runs at the end of every nightly run and, through its
automation condition, after a backfill of selected pages (once the backfill's runs are done and their
blocking checks passed), so analysts always read one consistent, self-contained, documented snapshot with
its history."""

import subprocess
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from assets._metadata import preview, table_metadata
from assets.partitions import pages_in_flight
from resources import InputsResource, RankingSettings, StorageResource
from resources.data_root import past_deadline
from seestocks_rank.evaluation.page_report import INDEX, write_page_reports
from seestocks_rank.publication.history import RunRecord, file_fingerprint, history_tables
from seestocks_rank.publication.schema import (
    ENUM_COLUMNS,
    JSON_COLUMNS,
    STATUSES,
    TABLES,
    VIEWS,
    column_comment,
)
from seestocks_rank.publication.tables import INPUT_TABLES, PAGE_TABLES, analyst_tables
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
PROJECT = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The package version, and the commit when the code runs from a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT,
                                timeout=5).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version('seestocks-rank')}+{commit}" if commit else version("seestocks-rank")


def _trigger(run: dg.DagsterRun) -> str:
    tags = run.tags
    if "dagster/schedule_name" in tags:
        return "nightly"
    if "dagster/backfill" in tags:
        return "backfill"
    if tags.get("seestocks/launched_by") == "cli":
        return "command line"
    if "dagster/sensor_name" in tags:
        return f"sensor {tags['dagster/sensor_name']}"
    return "automation" if "dagster/from_automation_condition" in tags else "manual"


def _run_record(context: dg.AssetExecutionContext, inputs: InputsResource, tables: dict) -> RunRecord:
    stats = context.instance.get_run_stats(context.run_id)
    started = datetime.fromtimestamp(stats.start_time, UTC) if stats.start_time else datetime.now(UTC)
    rankings = tables.get("rankings", pl.DataFrame({"model_version": []}))
    paths = {"catalog": inputs.catalog_path, "taxonomy": inputs.taxonomy_path,
             "category_pages": inputs.category_pages_path, "judgments": inputs.judgments_path}  # fmt: skip
    return RunRecord(
        run_id=context.run_id,
        trigger=_trigger(context.run),
        started_at=started,
        published_at=datetime.now(UTC),
        code_version=code_version(),
        model_versions={
            "fusion": ",".join(sorted(rankings.get_column("model_version").drop_nulls().unique().to_list())),
            "text": ",".join(sorted(tables["product_embeddings"].get_column("model_version").unique().to_list())),
        },
        input_fingerprints={name: file_fingerprint(path) for name, path in paths.items()},
        row_counts={
            "catalog": tables["catalog"].height,
            "quarantined": tables["quarantine"].height,
            "pages": tables["category_pages"].height,
            "candidates": tables.get("candidate_sets", pl.DataFrame()).height,
            "shown": rankings.height,
        },  # fmt: skip
    )


@dg.asset(
    kinds={"duckdb"},
    deps=[*PAGE_TABLES, *INPUT_TABLES, "category_pages", "product_embeddings", "taxonomy_centroids"],
    automation_condition=PUBLICATION_CONDITION,
    # analysts are told when their file is stale: re-published at least once a day (the daemon evaluates it)
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)),
    check_specs=[dg.AssetCheckSpec("every_active_page_ranked", asset="analyst_database")],
)
def analyst_database(
    context: dg.AssetExecutionContext, storage: StorageResource, inputs: InputsResource, settings: RankingSettings
):
    """Rebuild ``<data root>/seestocks.duckdb`` (see :mod:`seestocks_rank.publication`) and swap it in
    atomically: the stage tables of the pages that have a ranking, the history of runs, rankings and page
    health carried over from the live file, the views that explain and compare, a comment on every table
    and column. An active page without a ranking is left out; the check fails for one unless a queued or
    running run will rank it (a page added since the last run) or it has no partition yet."""
    late = past_deadline(context.run)
    if late:  # analysts keep the last good file rather than one from a run that overran
        raise dg.Failure(late)
    manifest = pl.read_parquet(storage.root.embeddings / MANIFEST)
    built = analyst_tables(storage.tables, manifest, settings.page_size, settings.min_confidence)
    tables = dict(built.tables)
    failures = read_failures(storage.root.alerts)
    if failures is not None:
        tables["run_failures"] = failures
    run = _run_record(context, inputs, tables)
    tables |= history_tables(storage.root.duckdb, run, tables.get("rankings", pl.DataFrame()), built.health,
                             settings.history_days) if "rankings" in tables else {}  # fmt: skip
    views = {name: sql for name, (_, sql) in VIEWS.items() if "rankings" in tables}
    counts = publish_duckdb(
        storage.root.duckdb,
        tables,
        views,
        column_types={
            **{t: dict.fromkeys(cols, "JSON") for t, cols in JSON_COLUMNS.items()},
            **{t: dict.fromkeys(cols, "page_status") for t, cols in ENUM_COLUMNS.items()},
        },  # fmt: skip
        enums={"page_status": STATUSES},
        comments={**TABLES, **{name: text for name, (text, _) in VIEWS.items()}},
        column_comment=column_comment,
    )
    coming = pages_in_flight(context.instance, exclude_run_id=context.run_id)
    waiting = built.unranked.filter(pl.col("category_id").is_in(list(coming)) | pl.col("page_key").is_null())
    missing = built.unranked.join(waiting, on="category_id", how="anti")
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(storage.root.duckdb)),
            **(table_metadata(tables["rankings"], "seestocks.rankings") if "rankings" in tables else {}),
            "tables": dg.MetadataValue.json(counts),
            "views": sorted(views),
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


@dg.asset(
    kinds={"html"},
    deps=["analyst_database"],
    automation_condition=AC.eager(),
)
def page_reports(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """One HTML report per published page (what it shows and why, what the rules kept off, what changed)
    and an index, those needing a look first: ``<data root>/reports/pages``, readable offline."""
    folder = storage.root.reports / "pages"
    reports = write_page_reports(storage.root.duckdb, folder)
    chart = reports.health_chart
    look = pl.DataFrame()
    if chart:
        with duckdb.connect(str(storage.root.duckdb), read_only=True) as con:
            look = con.sql("SELECT category_path, why FROM pages_needing_a_look").pl()
    return dg.MaterializeResult(
        metadata={
            "index": dg.MetadataValue.path(str(folder / INDEX)),
            "pages": len(reports.files) - 1,
            "pages_needing_a_look": look.height,
            "needing_a_look": preview(look, 20) if look.height else dg.MetadataValue.md("_none_"),
            **(
                {"health": dg.MetadataValue.md(f"![page health](data:image/png;base64,{b64encode(chart).decode()})")}
                if chart
                else {}
            ),  # fmt: skip
        }
    )
