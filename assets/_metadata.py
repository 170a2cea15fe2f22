"""Small helpers for asset metadata: Markdown previews and timings."""

import dagster as dg
import polars as pl

from resources.io_manager import MAX_PAGES_WITH_PREVIEW, column_schema
from seestocks_rank.timing import timed

__all__ = ["column_schema", "few_pages_only", "preview", "table_metadata", "timed"]


def preview(df: pl.DataFrame, n: int = 10, columns: list[str] | None = None) -> dg.MetadataValue:
    """A Markdown table of the first ``n`` rows (floats rounded)."""
    head = df.select(columns or df.columns).head(n)
    head = head.with_columns(pl.col(pl.Float32, pl.Float64).round(4))
    head = head.select(c for c in head.columns if not isinstance(head.schema[c], pl.Array | pl.List))
    if head.height == 0:
        return dg.MetadataValue.md("_empty_")
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "/") for v in row) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def few_pages_only(context: dg.AssetExecutionContext, **entries: object) -> dict[str, object]:
    """``entries`` when the run materializes at most ``MAX_PAGES_WITH_PREVIEW`` partitions, else nothing."""
    return entries if len(context.partition_keys) <= MAX_PAGES_WITH_PREVIEW else {}


def table_metadata(df: pl.DataFrame, table_name: str) -> dict[str, object]:
    """Dagster's standard table metadata: row count, column schema and the table's name."""
    return {
        "dagster/row_count": df.height,
        "dagster/column_schema": column_schema(df),
        "dagster/table_name": table_name,
    }
