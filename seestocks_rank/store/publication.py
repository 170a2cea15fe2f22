"""The analysts' DuckDB file, rebuilt beside the live one and swapped in atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl

from seestocks_rank.store.failpoints import failpoint
from seestocks_rank.store.tables import _check_name, exclusive_lock


def publish_duckdb(
    db_path: Path,
    tables: Mapping[str, pl.DataFrame],
    views: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Rebuild the analysts' DuckDB file with ``tables`` (materialised) and ``views`` (SQL), atomically.

    The new database is written beside the live one and renamed over it, under an exclusive lock,
    so this is the only writer and a failed publication leaves the previous file untouched.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with exclusive_lock(db_path.with_suffix(".lock")):
        tmp = db_path.with_name(f".{db_path.name}.building")
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
        try:
            con = duckdb.connect(str(tmp))
            try:
                for name, df in tables.items():
                    con.register("_incoming", df.to_arrow())
                    con.execute(f'CREATE TABLE "{_check_name(name)}" AS SELECT * FROM _incoming')
                    con.unregister("_incoming")
                    counts[name] = df.height
                for name, sql in (views or {}).items():
                    con.execute(f'CREATE VIEW "{_check_name(name)}" AS {sql}')
                con.execute("CHECKPOINT")
            finally:
                con.close()
            with open(tmp, "rb") as fh:  # on disk before it replaces the live file
                os.fsync(fh.fileno())
            failpoint("publication.built")
            os.replace(tmp, db_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return counts
