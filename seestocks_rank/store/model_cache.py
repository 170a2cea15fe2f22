"""Model outputs kept between nightly runs, keyed by the model's version and the exact texts it read.

Outside the product embeddings (which have their own store), a nightly run asks the transformers the same
questions as the night before: the cross-encoder scores ~270K (page prompt, title) pairs at SeeStocks' size
(minutes on a CPU), and the bi-encoder embeds 5,595 taxonomy node prompts, 1,347 page prompts and the judged
titles. Wrapping a model in :class:`CachedCrossEncoder` or :class:`CachedTextEncoder` answers what it was
asked before from a table and only sends new texts through the model; texts repeated within one run (near-
duplicate offers share titles) go through once. A reworded title, a renamed page or a retrained model
(another version) is a new key, so results are those of the model itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from seestocks_rank.store.tables import write_parquet_atomic

LAST_USED = pl.Datetime("us", "UTC")


class _Rows:
    """One model version's cache rows: a key frame (with each key's row number) and the value and
    ``last_used`` arrays, grown by doubling, so a lookup costs one join however large the cache is."""

    def __init__(self, keys: pl.DataFrame, values: np.ndarray, last_used: np.ndarray) -> None:
        self.keys = keys.with_columns(pl.int_range(keys.height, dtype=pl.Int64).alias("_row"))
        self.values, self.last_used, self.n = values, last_used, keys.height

    def append(self, keys: pl.DataFrame, values: np.ndarray, now: np.int64) -> None:
        if self.n + len(values) > len(self.values):
            capacity = max(2 * len(self.values), self.n + len(values), 64)
            grown = np.empty((capacity, *self.values.shape[1:]), dtype=self.values.dtype)
            grown[: self.n] = self.values[: self.n]
            stamps = np.empty(capacity, dtype=np.int64)
            stamps[: self.n] = self.last_used[: self.n]
            self.values, self.last_used = grown, stamps
        self.values[self.n : self.n + len(values)] = values
        self.last_used[self.n : self.n + len(values)] = now
        rows = pl.int_range(self.n, self.n + keys.height, dtype=pl.Int64, eager=True).alias("_row")
        self.keys = pl.concat([self.keys, keys.with_columns(rows)], rechunk=self.keys.n_chunks() > 32)
        self.n += len(values)


class _TextKeyedCache:
    """Model outputs keyed by ``model_version`` and the texts in ``key_columns``; stored as a table of
    ``model_version, <key columns>, value, last_used``. Lookups join on the keys only and gather values
    from arrays, so the many small calls of a categorization run stay cheap."""

    key_columns: tuple[str, ...] = ()

    def __init__(self, value_dtype: pl.DataType, table: pl.DataFrame | None, now: datetime | None) -> None:
        self.schema = {"model_version": pl.Utf8, **dict.fromkeys(self.key_columns, pl.Utf8), "value": value_dtype,
                       "last_used": LAST_USED}  # fmt: skip
        usable = table is not None and dict(table.schema) == self.schema
        self._stored = table if usable else pl.DataFrame(schema=self.schema)
        self._versions: dict[str, _Rows] = {}
        self.now = now or datetime.now(UTC)
        self._now_us = np.int64(int(self.now.timestamp() * 1_000_000))
        self.computed = 0
        self.reused = 0

    def _rows(self, version: str) -> _Rows:
        if version not in self._versions:
            stored = self._stored.filter(pl.col("model_version") == version)
            values = stored.get_column("value").to_numpy()
            values = values.reshape(stored.height, *self._value_shape()).astype(np.float32, copy=True)
            stamps = stored.get_column("last_used").dt.epoch("us").to_numpy().astype(np.int64)
            self._versions[version] = _Rows(stored.select(self.key_columns), values, stamps)
        return self._versions[version]

    def _value_shape(self) -> tuple[int, ...]:
        """A value's array shape: () for a score, (dim,) for a vector."""
        return ()

    def _lookup(self, version: str, keys: pl.DataFrame, compute: Callable[[pl.DataFrame], np.ndarray]) -> np.ndarray:
        """The value of every row of ``keys``: known for this ``version``, else ``compute``d (once per
        distinct key) and remembered."""
        on = list(self.key_columns)
        cache = self._rows(version)
        found = keys.join(cache.keys, on=on, how="left", maintain_order="left").get_column("_row")
        rows = found.fill_null(-1).to_numpy().copy()  # writable: new keys' rows are filled in below
        missing = rows < 0
        self.reused += len(np.unique(rows[~missing]))
        if missing.any():
            new_keys = keys.filter(pl.Series(missing)).unique(maintain_order=True)
            first_new_row = cache.n
            cache.append(new_keys, np.asarray(compute(new_keys), dtype=np.float32), self._now_us)
            self.computed += new_keys.height
            added = keys.filter(pl.Series(missing)).join(
                cache.keys.slice(first_new_row), on=on, how="left", maintain_order="left"
            )
            rows[missing] = added.get_column("_row").to_numpy()
        cache.last_used[rows] = self._now_us
        return cache.values[rows]

    @property
    def table(self) -> pl.DataFrame:
        """Every row, stored and new, with ``last_used = now`` for the keys used."""
        frames = [self._stored.filter(~pl.col("model_version").is_in(list(self._versions)))]
        for version, cache in self._versions.items():
            values = cache.values[: cache.n]
            frames.append(
                cache.keys.drop("_row").with_columns(
                    pl.lit(version).alias("model_version"),
                    pl.Series("value", values, dtype=self.schema["value"]),
                    pl.Series("last_used", cache.last_used[: cache.n])
                    .cast(pl.Datetime("us"))
                    .dt.replace_time_zone("UTC"),
                )
            )
        return pl.concat([f.select(list(self.schema)) for f in frames])

    def kept(self, keep_days: float) -> pl.DataFrame:
        """``table`` without rows unused for ``keep_days`` (old models, pages and titles gone)."""
        return self.table.filter(pl.col("last_used") >= self.now - timedelta(days=keep_days))


class CachedCrossEncoder(_TextKeyedCache):
    """A cross-encoder (``version``, ``score(contexts, titles)``) whose scores persist in ``table``."""

    key_columns = ("context", "title")

    def __init__(self, model: object, table: pl.DataFrame | None = None, now: datetime | None = None) -> None:
        super().__init__(pl.Float32, table, now)
        self.model = model

    @property
    def version(self) -> str:
        return self.model.version  # type: ignore[attr-defined]

    def score(self, contexts: list[str], titles: list[str], **kwargs: object) -> np.ndarray:
        pairs = pl.DataFrame({"context": contexts, "title": titles}, schema=dict.fromkeys(self.key_columns, pl.Utf8))

        def run(missing: pl.DataFrame) -> np.ndarray:
            scores = self.model.score(missing["context"].to_list(), missing["title"].to_list(), **kwargs)  # type: ignore[attr-defined]
            return np.asarray(scores, dtype=np.float32)

        return self._lookup(self.version, pairs, run)


class CachedTextEncoder(_TextKeyedCache):
    """A text encoder (``model_version``, ``dim``, ``encode(texts)``) whose vectors persist in ``table``."""

    key_columns = ("text",)

    def __init__(self, encoder: object, table: pl.DataFrame | None = None, now: datetime | None = None) -> None:
        self.encoder = encoder
        self.dim: int = encoder.dim  # type: ignore[attr-defined]
        self.model_version: str = encoder.model_version  # type: ignore[attr-defined]
        super().__init__(pl.Array(pl.Float32, self.dim), table, now)

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = pl.DataFrame({"text": texts}, schema={"text": pl.Utf8})

        def run(missing: pl.DataFrame) -> np.ndarray:
            return np.asarray(self.encoder.encode(missing["text"].to_list()), dtype=np.float32)  # type: ignore[attr-defined]

        return self._lookup(self.model_version, keys, run).reshape(len(texts), self.dim)

    def _value_shape(self) -> tuple[int, ...]:
        return (self.dim,)


Cache = TypeVar("Cache", CachedCrossEncoder, CachedTextEncoder)


@contextmanager
def cached(cache_type: type[Cache], model: object, path: Path, keep_days: float | None = None) -> Iterator[Cache]:
    """``model`` behind a ``cache_type`` whose rows live in ``path`` (Parquet): read when the block starts,
    written back (atomically) when it ends, without the rows unused for ``keep_days`` when given."""
    cache = cache_type(model, pl.read_parquet(path) if path.exists() else None)
    try:
        yield cache
    finally:
        if cache.computed or cache.reused:
            write_parquet_atomic(cache.table if keep_days is None else cache.kept(keep_days), path)
