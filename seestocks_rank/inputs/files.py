"""Reading input files: CSV or Parquet, by extension."""

from __future__ import annotations

from pathlib import Path

import polars as pl


# ---------------------------------------------------------------------------- public API
def read_table(path: str | Path) -> pl.DataFrame:
    """Read a ``.parquet`` or ``.csv`` catalog (CSV columns are all read as text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.read_parquet(path)
    if suffix == ".csv":
        return pl.read_csv(path, infer_schema=False)
    raise ValueError(f"unsupported catalog file type {path.suffix!r} for {path} (expected .parquet or .csv)")
