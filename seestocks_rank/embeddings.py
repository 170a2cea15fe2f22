"""Incremental product embeddings: a product is re-encoded only when its content changes.

The content an embedding depends on (title, image path and the model version) is stored beside the
vectors and compared exactly on the next run, so a re-run on an unchanged catalog encodes nothing, a
changed title re-encodes one row and a new model re-encodes everything.

With an image model (open_clip, :mod:`seestocks_rank.vision`), ``image_embedding`` holds each readable
product image's vector and ``image_error`` why an image could not be used (``missing_file``, ``corrupt``,
``truncated``, ``too_large``, ...); the product keeps a null image vector and the batch goes on.
``embedding`` is the vector retrieval uses: the fused ``normalize(w_text * text + w_image * image)`` when
the image model shares the text encoder's space (same dimension, e.g. open_clip with the MiniLM text
tower), falling back per product to the text vector when it has no usable image. Without an image model
the table is exactly the text-only one (null image columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from seestocks_rank.encoders import TextEncoder

CONTENT_COLUMNS = ("title", "image_path", "model_version")
EMBEDDING_COLUMNS = ("offer_id", *CONTENT_COLUMNS, "text_embedding", "image_embedding", "embedding", "image_error")
DEFAULT_TEXT_WEIGHT = 0.7
DEFAULT_IMAGE_WEIGHT = 0.3


class ImageEncoder(Protocol):
    """What the pipeline needs from an image model (``seestocks_rank.vision.VisionLanguageModel``)."""

    model_version: str
    dim: int

    def encode_images(self, paths: list[str | None]):  # noqa: ANN201 - returns vision.ImageEmbeddings
        ...


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit-length rows (an all-zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def fuse(
    text: np.ndarray,
    image: np.ndarray,
    ok: np.ndarray,
    *,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    image_weight: float = DEFAULT_IMAGE_WEIGHT,
) -> np.ndarray:
    """Per row: ``normalize(text_weight * text + image_weight * image)`` where ``ok`` (a usable image),
    else the text vector alone. When the two spaces differ in size the text vector is kept everywhere."""
    out = np.array(text, dtype=np.float32, copy=True)
    if image.shape[1] != text.shape[1] or not ok.any():
        return out
    mixed = text_weight * text[ok] + image_weight * image[ok]
    out[ok] = normalize_rows(mixed)
    return out


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


def embed_products(
    products: pl.DataFrame,
    encoder: TextEncoder,
    previous: pl.DataFrame | None = None,
    image_model: ImageEncoder | None = None,
    *,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    image_weight: float = DEFAULT_IMAGE_WEIGHT,
) -> EmbeddingRun:
    """Embed ``products`` (columns ``offer_id, title, image_path``), reusing rows of ``previous`` whose
    content is unchanged. Products no longer in the catalog are dropped from the table. With
    ``image_model``, products with an ``image_path`` also get an image vector (or an ``image_error``)."""
    version = encoder.model_version
    image_dim = encoder.dim
    if image_model is not None:
        version = f"{version}+{image_model.model_version}+w{text_weight:g}:{image_weight:g}"
        image_dim = image_model.dim
    keyed = products.select(
        "offer_id",
        "title",
        pl.col("image_path").fill_null(""),
        pl.lit(version).alias("model_version"),
    )
    text_type, image_type = pl.Array(pl.Float32, encoder.dim), pl.Array(pl.Float32, image_dim)
    reusable = keyed.clear().with_columns(
        pl.lit(None, text_type).alias("text_embedding"),
        pl.lit(None, image_type).alias("image_embedding"),
        pl.lit(None, text_type).alias("embedding"),
        pl.lit(None, pl.String).alias("image_error"),
    )
    if (
        previous is not None
        and previous.height
        and previous.schema.get("text_embedding") == text_type
        and previous.schema.get("image_embedding") == image_type
        and "image_error" in previous.columns
    ):
        reusable = keyed.join(previous.select(EMBEDDING_COLUMNS), on=["offer_id", *CONTENT_COLUMNS], how="inner")
    todo = keyed.join(reusable.select("offer_id"), on="offer_id", how="anti")
    text = encoder.encode(todo.get_column("title").to_list()).reshape(todo.height, encoder.dim)
    image = np.zeros((todo.height, image_dim), dtype=np.float32)
    ok = np.zeros(todo.height, dtype=bool)
    errors: list[str | None] = [None] * todo.height
    if image_model is not None and todo.height:
        paths = todo.get_column("image_path").to_list()
        has_path = np.flatnonzero([bool(p) for p in paths])
        if has_path.size:
            result = image_model.encode_images([paths[i] for i in has_path])
            image[has_path] = result.vectors
            ok[has_path] = result.ok
            for i, reason in zip(has_path, result.reasons, strict=True):
                errors[i] = reason
    fused = fuse(text, image, ok, text_weight=text_weight, image_weight=image_weight)
    fresh = todo.with_columns(
        array_series("text_embedding", text),
        pl.when(pl.Series(ok)).then(array_series("image_embedding", image)).alias("image_embedding"),
        array_series("embedding", fused),
        pl.Series("image_error", errors, dtype=pl.String),
    )
    table = pl.concat([reusable.select(EMBEDDING_COLUMNS), fresh.select(EMBEDDING_COLUMNS)]).sort("offer_id")
    dropped = 0 if previous is None else previous.join(keyed, on="offer_id", how="anti").height
    return EmbeddingRun(table=table, encoded=todo.height, reused=reusable.height, dropped=dropped)


def image_vectors(rows: pl.DataFrame, embeddings: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Row-aligned image vectors of ``rows`` (with ``offer_id``) and a mask of the rows that have one,
    or None when the embeddings table has no image vector at all (a text-only catalog)."""
    if "image_embedding" not in embeddings.columns or embeddings.get_column("image_embedding").null_count() == (
        embeddings.height
    ):
        return None
    joined = rows.select("offer_id").join(embeddings.select("offer_id", "image_embedding"), on="offer_id", how="left")
    ok = joined.get_column("image_embedding").is_not_null().to_numpy()
    dim = embeddings.schema["image_embedding"].size
    out = np.zeros((joined.height, dim), dtype=np.float32)
    if ok.any():
        out[ok] = vectors(joined.filter(pl.Series(ok)), "image_embedding")
    return out, ok


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
