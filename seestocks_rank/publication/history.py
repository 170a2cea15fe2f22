"""What the analysts' file remembers between publications: the ``runs`` that published it, a snapshot of every
published ranking (``ranking_history``) and each page's health per run (``page_health``), kept for
``keep_days``. The history is carried from the live file into the next one, so it changes exactly when a
publication is swapped in (a failed or killed run leaves no trace of a snapshot that was never published).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from seestocks_rank.rules.page_rules import SHOWN

SNAPSHOT_COLUMNS = (
    "category_id", "category_path", "rank", "offer_id", "product_id", "title", "retailer", "price", "final_score",
)  # fmt: skip
HISTORY_TABLES = ("runs", "ranking_history", "page_health")
UTC_TIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class RunRecord:
    """The run that publishes: its id, trigger, times, and what it ran on."""

    run_id: str
    trigger: str  # nightly, backfill, command line, automation
    started_at: datetime
    published_at: datetime
    code_version: str
    model_versions: dict[str, str | None] = field(default_factory=dict)
    input_fingerprints: dict[str, str | None] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)


def file_fingerprint(path: Path, chunk: int = 1 << 20) -> str | None:
    """sha256 of a file's bytes (first 16 hex digits), None when it does not exist."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def page_health(ranked: pl.DataFrame, page_size: int, min_confidence: float) -> pl.DataFrame:
    """Per page, from its ``filtered_rankings`` rows (``category_path`` joined): candidates retrieved, how many
    the rules removed and why (``stale``: confident enough, but not seen for so long that freshness took it
    below the cut), shown versus the page size, the largest retailer's share of the top 10 and the median
    price and confidence shown."""
    status = pl.col("status")
    stale = (status == "low_confidence") & (pl.col("confidence") >= min_confidence)
    top10 = (
        ranked.filter((status == SHOWN) & (pl.col("rank") <= 10))
        .group_by("category_id", "retailer")
        .len()
        .group_by("category_id")
        .agg((pl.col("len").max() / pl.col("len").sum()).alias("top10_max_retailer_share"))
    )
    return (
        ranked.group_by("category_id", "category_path")
        .agg(
            pl.len().alias("candidates_retrieved"),
            (status == "duplicate").sum().alias("removed_duplicate"),
            (status == "out_of_category").sum().alias("removed_out_of_category"),
            stale.sum().alias("removed_stale"),
            ((status == "low_confidence") & ~stale).sum().alias("removed_low_confidence"),
            (status == "overflow").sum().alias("beyond_page_size"),
            (status == SHOWN).sum().alias("shown"),
            pl.col("price").filter(status == SHOWN).median().alias("median_price_shown"),
            pl.col("confidence").filter(status == SHOWN).median().alias("median_confidence_shown"),
        )
        .join(top10, on="category_id", how="left")
        .with_columns(
            pl.lit(page_size).alias("page_size"),
            (pl.col("shown") / page_size).alias("page_filled_share"),
        )
        .sort("category_id")
    )


def _previous(live_db: Path, table: str) -> pl.DataFrame | None:
    if not live_db.exists():
        return None
    try:
        with duckdb.connect(str(live_db), read_only=True) as con:
            return con.sql(f'SELECT * FROM "{table}"').pl()
    except duckdb.Error:  # an older file without the table, or an unreadable one: history starts here
        return None


def _append(previous: pl.DataFrame | None, new: pl.DataFrame, keep_since: datetime | None) -> pl.DataFrame:
    if previous is not None:
        previous = previous.select(new.columns).cast(new.schema) if set(new.columns) <= set(previous.columns) else None
    rows = pl.concat([previous, new]) if previous is not None else new
    return rows.filter(pl.col("published_at") >= keep_since) if keep_since is not None else rows


def history_tables(
    live_db: Path, run: RunRecord, rankings: pl.DataFrame, health: pl.DataFrame, keep_days: float
) -> dict[str, pl.DataFrame]:
    """``runs``, ``ranking_history`` and ``page_health`` of the live file with this publication appended,
    without what is older than ``keep_days`` (runs are all kept)."""
    stamp = {"run_id": run.run_id, "published_at": run.published_at}
    runs = pl.DataFrame(
        [
            {
                **stamp,
                "trigger": run.trigger,
                "started_at": run.started_at,
                "code_version": run.code_version,
                "model_versions": _json(run.model_versions),
                "input_fingerprints": _json(run.input_fingerprints),
                "row_counts": _json(run.row_counts),
            }
        ],  # fmt: skip
        schema_overrides={"published_at": UTC_TIME, "started_at": UTC_TIME},
    )
    snapshot = rankings.select(SNAPSHOT_COLUMNS).with_columns(
        pl.lit(run.run_id).alias("run_id"),
        pl.lit(run.published_at).cast(pl.Datetime("us", "UTC")).alias("published_at"),
    )
    health = health.with_columns(
        pl.lit(run.run_id).alias("run_id"),
        pl.lit(run.published_at).cast(pl.Datetime("us", "UTC")).alias("published_at"),
    )
    keep_since = run.published_at - timedelta(days=keep_days)
    return {
        "runs": _append(_previous(live_db, "runs"), runs, None),
        "ranking_history": _append(_previous(live_db, "ranking_history"), snapshot, keep_since),
        "page_health": _append(_previous(live_db, "page_health"), health, keep_since),
    }


def _json(value: dict) -> str:
    return json.dumps(value, sort_keys=True, default=str)
