"""Incremental product embeddings: a product is re-encoded only when its content changes.

The content an embedding depends on (title, image path and the model version) is stored beside the
vectors and compared exactly on the next run, so a re-run on an unchanged catalog encodes nothing, a
changed title re-encodes one row and a new model re-encodes everything. The table has room for image
vectors (null until an image model is configured); ``embedding`` is the vector retrieval uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from seestocks_rank.encoders import TextEncoder

CONTENT_COLUMNS = ("title", "image_path", "model_version")
EMBEDDING_COLUMNS = ("offer_id", *CONTENT_COLUMNS, "text_embedding", "image_embedding", "embedding")


@dataclass(frozen=True)
class EmbeddingRun:
    table: pl.DataFrame
    encoded: int
    reused: int
    dropped: int


def vectors(df: pl.DataFrame, column: str = "embedding") -> np.ndarray:
    """A float32 ``[n, dim]`` matrix from an Array column."""
    if df.height == 0:
        return np.zeros((0, df.schema[column].size), dtype=np.float32)
    return np.ascontiguousarray(df.get_column(column).to_numpy(), dtype=np.float32)


def array_series(name: str, matrix: np.ndarray) -> pl.Series:
    """An ``Array(Float32, dim)`` series from a ``[n, dim]`` matrix."""
    matrix = np.asarray(matrix, dtype=np.float32)
    return pl.Series(name, matrix, dtype=pl.Array(pl.Float32, matrix.shape[1]))


def embed_products(products: pl.DataFrame, encoder: TextEncoder, previous: pl.DataFrame | None = None) -> EmbeddingRun:
    """Embed ``products`` (columns ``offer_id, title, image_path``), reusing rows of ``previous`` whose
    content is unchanged. Products no longer in the catalog are dropped from the table."""
    keyed = products.select(
        "offer_id",
        "title",
        pl.col("image_path").fill_null(""),
        pl.lit(encoder.model_version).alias("model_version"),
    )
    reusable = keyed.clear().with_columns(
        pl.lit(None, pl.Array(pl.Float32, encoder.dim)).alias(c) for c in EMBEDDING_COLUMNS[4:]
    )
    if (
        previous is not None
        and previous.height
        and previous.schema.get("text_embedding") == pl.Array(pl.Float32, encoder.dim)
    ):
        reusable = keyed.join(previous.select(EMBEDDING_COLUMNS), on=["offer_id", *CONTENT_COLUMNS], how="inner")
    todo = keyed.join(reusable.select("offer_id"), on="offer_id", how="anti")
    text = encoder.encode(todo.get_column("title").to_list())
    fresh = todo.with_columns(
        array_series("text_embedding", text.reshape(len(text), encoder.dim)),
        pl.lit(None, pl.Array(pl.Float32, encoder.dim)).alias("image_embedding"),
    ).with_columns(pl.col("text_embedding").alias("embedding"))
    table = pl.concat([reusable.select(EMBEDDING_COLUMNS), fresh.select(EMBEDDING_COLUMNS)]).sort("offer_id")
    dropped = 0 if previous is None else previous.join(keyed, on="offer_id", how="anti").height
    return EmbeddingRun(table=table, encoded=todo.height, reused=reusable.height, dropped=dropped)


def with_vectors(
    rows: pl.DataFrame, embeddings: pl.DataFrame, column: str = "embedding"
) -> tuple[pl.DataFrame, np.ndarray]:
    """``rows`` (with ``offer_id``) joined to their vectors: the joined frame and its row-aligned
    ``[n, dim]`` matrix. Raises when an offer has no embedding (the embeddings table is stale)."""
    joined = rows.join(embeddings.select("offer_id", column), on="offer_id", how="left")
    missing = joined.get_column(column).is_null()
    if missing.any():
        example = joined.get_column("offer_id")[int(missing.arg_max())]
        raise ValueError(
            f"{int(missing.sum())} offer(s) have no {column}, e.g. {example!r}: re-materialize product_embeddings"
        )
    return joined.drop(column), vectors(joined, column)
