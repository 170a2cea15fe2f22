"""Small helpers for asset metadata: Markdown previews and timings."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import polars as pl


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


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = round(time.perf_counter() - start, 3)
