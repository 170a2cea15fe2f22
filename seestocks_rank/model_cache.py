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

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

LAST_USED = pl.Datetime("us", "UTC")


class _TextKeyedCache:
    """``model_version, <key columns>, value, last_used`` rows; ``_lookup`` fills and extends them."""

    key_columns: tuple[str, ...] = ()

    def __init__(self, value_dtype: pl.DataType, table: pl.DataFrame | None, now: datetime | None) -> None:
        self.schema = {"model_version": pl.Utf8, **dict.fromkeys(self.key_columns, pl.Utf8), "value": value_dtype,
                       "last_used": LAST_USED}  # fmt: skip
        usable = table is not None and dict(table.schema) == self.schema
        self.table = table if usable else pl.DataFrame(schema=self.schema)
        self.now = now or datetime.now(UTC)
        self.computed = 0
        self.reused = 0

    def _lookup(self, version: str, keys: pl.DataFrame, compute: Callable[[pl.DataFrame], np.ndarray]) -> pl.Series:
        """The value of every row of ``keys``: from the table for this ``version``, else ``compute``d (once
        per distinct key) and added."""
        on = list(self.key_columns)
        known = self.table.filter(pl.col("model_version") == version).select(*on, "value")
        unique = keys.unique(maintain_order=True).join(known, on=on, how="left", maintain_order="left")
        missing = unique.filter(pl.col("value").is_null()).drop("value")
        if missing.height:
            fresh = missing.with_columns(pl.Series("value", compute(missing), dtype=self.schema["value"]))
        else:
            fresh = missing.with_columns(pl.lit(None, dtype=self.schema["value"]).alias("value"))
        self.computed += fresh.height
        self.reused += unique.height - fresh.height
        used = pl.concat([unique.filter(pl.col("value").is_not_null()), fresh]).with_columns(
            pl.lit(version).alias("model_version"), pl.lit(self.now, dtype=LAST_USED).alias("last_used")
        )
        used = used.select(list(self.schema))
        self.table = pl.concat([self.table.join(used, on=["model_version", *on], how="anti"), used])
        return keys.join(used.select(*on, "value"), on=on, how="left", maintain_order="left").get_column("value")

    def kept(self, keep_days: float) -> pl.DataFrame:
        """The table without rows unused for ``keep_days`` (old models, pages and titles gone)."""
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

        return self._lookup(self.version, pairs, run).to_numpy()


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

        vectors = self._lookup(self.model_version, keys, run)
        return vectors.to_numpy().reshape(len(texts), self.dim).astype(np.float32, copy=False)
