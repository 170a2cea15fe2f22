"""The analysts' DuckDB file, rebuilt beside the live one and swapped in atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import polars as pl

from seestocks_rank.store.failpoints import failpoint
from seestocks_rank.store.tables import _check_name, exclusive_lock


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish_duckdb(
    db_path: Path,
    tables: Mapping[str, pl.DataFrame],
    views: Mapping[str, str] | None = None,
    *,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    enums: Mapping[str, tuple[str, ...]] | None = None,
    comments: Mapping[str, str] | None = None,
    column_comment: Callable[[str], str | None] | None = None,
) -> dict[str, int]:
    """Rebuild the analysts' DuckDB file, atomically: ``tables`` materialised (``column_types`` casts
    columns, e.g. to ``JSON`` or to one of the ``enums`` types created first), then ``views`` (SQL over those
    tables only), and a comment on every table and view (``comments``) and column (``column_comment``).

    The new database is written beside the live one and renamed over it, under an exclusive lock, so this
    is the only writer, a failed publication leaves the previous file untouched, and an analyst's open
    read-only connection keeps reading the file it opened.
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
                for name, values in (enums or {}).items():
                    con.execute(f'CREATE TYPE "{_check_name(name)}" AS ENUM ({", ".join(map(_quote, values))})')
                for name, df in tables.items():
                    casts = {c: t for c, t in (column_types or {}).get(name, {}).items() if c in df.columns}
                    replace = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in casts.items())
                    con.register("_incoming", df.to_arrow())
                    select = f"SELECT * REPLACE ({replace}) FROM _incoming" if replace else "SELECT * FROM _incoming"
                    con.execute(f'CREATE TABLE "{_check_name(name)}" AS {select}')
                    con.unregister("_incoming")
                    counts[name] = df.height
                for name, sql in (views or {}).items():
                    con.execute(f'CREATE VIEW "{_check_name(name)}" AS {sql}')
                for name, text in (comments or {}).items():
                    kind = "VIEW" if name in (views or {}) else "TABLE"
                    if name in tables or name in (views or {}):
                        con.execute(f'COMMENT ON {kind} "{name}" IS {_quote(text)}')
                for name in [*tables, *(views or {})] if column_comment else []:
                    for (column,) in con.execute(f'SELECT column_name FROM (DESCRIBE "{name}")').fetchall():
                        text = column_comment(column)
                        if text:
                            con.execute(f'COMMENT ON COLUMN "{name}"."{column}" IS {_quote(text)}')
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
