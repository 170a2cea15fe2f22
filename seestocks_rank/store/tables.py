"""Table storage: atomic Parquet files (whole tables, or batches of category partitions behind an index)
and the analysts' DuckDB file.

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
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from seestocks_rank.store.failpoints import failpoint

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
        failpoint("table.written", path.stem)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


PARTITION_INDEX = "_partitions.parquet"


PREVIOUS_PARTITION_INDEX = "_partitions.previous.parquet"


class TableStore:
    """Parquet tables under ``tables_dir``: ``<name>.parquet``, or for a partitioned table a folder of
    batch files (one per write, holding every partition that write materialized) and an index
    (``_partitions.parquet``: partition -> batch file, rows). A run over 1,347 pages writes one file, not
    1,347; re-materializing one page writes a small batch and repoints that page. The index is the commit
    point (replaced atomically, the previous one kept); batch files neither index uses are deleted."""

    def __init__(self, tables_dir: str | Path):
        self.tables_dir = Path(tables_dir)

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{_check_name(name)}.parquet"

    def partitions_dir(self, name: str) -> Path:
        return self.tables_dir / _check_name(name)

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

    def partition_index(self, name: str) -> pl.DataFrame:
        """``partition, file, rows, key_column`` of every materialized partition (empty if none)."""
        path = self.partitions_dir(name) / PARTITION_INDEX
        if not path.exists():
            return pl.DataFrame(schema={"partition": pl.String, "file": pl.String, "rows": pl.Int64,
                                        "key_column": pl.String})  # fmt: skip
        return pl.read_parquet(path)

    def write_partitions(
        self, name: str, df: pl.DataFrame, partitions: Iterable[str], key_column: str = "category_id"
    ) -> dict[str, int]:
        """Write the requested partitions of ``df`` (split by ``key_column``; empty ones too) as one batch.

        Rows whose key is not among ``partitions`` are a bug upstream, so they raise instead of
        being silently dropped.
        """
        wanted = [_check_name(str(p)) for p in partitions]
        keys = df.get_column(key_column).cast(pl.Utf8)
        stray = set(keys.unique().to_list()) - set(wanted)
        if stray:
            raise ValueError(f"{name}: rows for partitions {sorted(stray)[:5]} not being materialized")
        folder = self.partitions_dir(name)
        batch = f"batch-{time.time_ns():x}-{uuid.uuid4().hex[:6]}.parquet"
        write_parquet_atomic(df.sort(key_column, maintain_order=True), folder / batch)
        failpoint("partitions.written", name)
        counts = df.group_by(keys.alias("partition")).len()
        rows = dict.fromkeys(wanted, 0) | {k: int(v) for k, v in counts.iter_rows()}
        written = pl.DataFrame(
            {"partition": list(rows), "file": [batch] * len(rows), "rows": list(rows.values()),
             "key_column": [key_column] * len(rows)},
            schema={"partition": pl.String, "file": pl.String, "rows": pl.Int64, "key_column": pl.String},
        )  # fmt: skip
        with exclusive_lock(folder / ".lock"):
            index = self.partition_index(name).filter(~pl.col("partition").is_in(wanted))
            current = folder / PARTITION_INDEX
            if current.exists():
                current.replace(folder / PREVIOUS_PARTITION_INDEX)
            write_parquet_atomic(pl.concat([index, written]).sort("partition"), current)
            self._collect_garbage(folder)
        return rows

    @staticmethod
    def _collect_garbage(folder: Path) -> None:
        keep = set()
        for index in (PARTITION_INDEX, PREVIOUS_PARTITION_INDEX):
            if (folder / index).exists():
                keep |= set(pl.read_parquet(folder / index, columns=["file"]).get_column("file").to_list())
        for path in folder.glob("*.parquet"):
            if path.name not in keep and not path.name.startswith("_partitions"):
                path.unlink(missing_ok=True)

    def partition_files(self, name: str) -> list[Path]:
        """The batch files the index points at (for readers such as DuckDB; filter by the index)."""
        files = self.partition_index(name).get_column("file").unique().sort().to_list()
        return [self.partitions_dir(name) / f for f in files]

    def read_partitions(self, name: str, partitions: Iterable[str] | None = None) -> pl.DataFrame:
        """Concatenate the given partitions (all materialized ones when ``None``)."""
        index = self.partition_index(name)
        if index.height == 0:
            raise FileNotFoundError(f"table {name!r} has no materialized partitions")
        if partitions is not None:
            wanted = [str(p) for p in partitions]
            missing = sorted(set(wanted) - set(index.get_column("partition").to_list()), key=wanted.index)
            if missing:
                raise FileNotFoundError(
                    f"table {name!r} has no materialized partition(s) {missing[:10]}"
                    + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
                )
            index = index.filter(pl.col("partition").is_in(wanted))
        frames = []
        for (file, key), group in index.group_by("file", "key_column", maintain_order=True):
            parts = group.get_column("partition")
            frame = pl.read_parquet(self.partitions_dir(name) / file)
            frames.append(frame.filter(pl.col(key).cast(pl.Utf8).is_in(parts.implode())))
        return pl.concat(frames, how="vertical_relaxed")


@contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` for the block (writers queue instead of racing)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
