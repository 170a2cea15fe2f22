"""Table storage: atomic Parquet files (whole tables or one file per category partition) and the
analysts' DuckDB file.

Every write goes to a temporary file in the target folder and is renamed over the old one, so a
crash mid-write leaves the previous version readable. The DuckDB file is rebuilt next to the live
one and swapped in the same way, under an exclusive file lock: concurrent runs queue instead of
failing on DuckDB's single-writer lock, and analysts' open read-only connections are never broken.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _check_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe table or partition name {name!r}")
    return name


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class TableStore:
    """Parquet tables under ``<root>/tables``: ``<name>.parquet`` or ``<name>/<partition>.parquet``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.tables_dir = self.root / "tables"

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{_check_name(name)}.parquet"

    def partition_path(self, name: str, partition: str) -> Path:
        return self.tables_dir / _check_name(name) / f"{_check_name(partition)}.parquet"

    def partition_glob(self, name: str) -> str:
        return str(self.tables_dir / _check_name(name) / "*.parquet")

    def write(self, name: str, df: pl.DataFrame) -> Path:
        return write_parquet_atomic(df, self.table_path(name))

    def read(self, name: str) -> pl.DataFrame:
        path = self.table_path(name)
        if not path.exists():
            raise FileNotFoundError(f"table {name!r} has not been materialized yet ({path})")
        return pl.read_parquet(path)

    def read_if_exists(self, name: str) -> pl.DataFrame | None:
        path = self.table_path(name)
        return pl.read_parquet(path) if path.exists() else None

    def write_partitions(
        self, name: str, df: pl.DataFrame, partitions: Iterable[str], key_column: str = "category_id"
    ) -> dict[str, int]:
        """Split ``df`` by ``key_column`` and write one file per requested partition (empty ones too).

        Rows whose key is not among ``partitions`` are a bug upstream, so they raise instead of
        being silently dropped.
        """
        wanted = [str(p) for p in partitions]
        keys = df.get_column(key_column).cast(pl.Utf8)
        stray = set(keys.unique().to_list()) - set(wanted)
        if stray:
            raise ValueError(f"{name}: rows for partitions {sorted(stray)[:5]} not being materialized")
        groups = {k[0]: g for k, g in df.with_columns(_pk=keys).group_by("_pk")}
        rows: dict[str, int] = {}
        for key in wanted:
            part = groups.get(key, df.clear().with_columns(_pk=pl.lit(None, pl.Utf8))).drop("_pk")
            write_parquet_atomic(part, self.partition_path(name, key))
            rows[key] = part.height
        return rows

    def read_partitions(self, name: str, partitions: Iterable[str] | None = None) -> pl.DataFrame:
        """Concatenate the given partitions (all existing ones when ``None``)."""
        if partitions is None:
            paths = sorted((self.tables_dir / _check_name(name)).glob("*.parquet"))
        else:
            paths = [self.partition_path(name, str(p)) for p in partitions]
            missing = [p.stem for p in paths if not p.exists()]
            if missing:
                raise FileNotFoundError(
                    f"table {name!r} has no materialized partition(s) {missing[:10]}"
                    + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
                )
        if not paths:
            raise FileNotFoundError(f"table {name!r} has no materialized partitions")
        return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    with _exclusive_lock(db_path.with_suffix(".lock")):
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
            os.replace(tmp, db_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return counts
