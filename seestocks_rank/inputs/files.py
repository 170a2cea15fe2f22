"""Reading input files: CSV or Parquet, by extension."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seestocks_rank.inputs.errors import InputError


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a ``.parquet`` or ``.csv`` input table (CSV columns are all read as text); raises
    :class:`InputError` when the file is missing, of another type or not readable as one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InputError(f"{path}: unsupported file type {path.suffix!r} (expected .parquet or .csv)")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable {suffix.lstrip('.')} file ({reason})") from exc
