"""Incremental product embeddings: a product is re-encoded only when its content changes.

The content an embedding depends on (title, image path, the image file's size and modification time, and
the model version) is stored beside the vectors and compared exactly on the next run, so a re-run on an
unchanged catalog encodes nothing, a changed title or an image file replaced in place re-encodes one row and
a new model re-encodes everything. (The image model is kept across nights until it drifts: see
:mod:`seestocks_rank.models.vlm_cadence`.)

Vectors live in an :class:`~seestocks_rank.embedding_store.EmbeddingStore` (memory-mapped chunks and a
manifest). With an image model (open_clip, :mod:`seestocks_rank.vision`), the ``image`` vectors hold each
readable product image's vector and ``image_error`` why an image could not be used (``missing_file``,
``corrupt``, ``truncated``, ``too_large``, ...); the product keeps no image vector and the batch goes on.
``fused`` is the vector retrieval uses: ``normalize(w_text * text + w_image * image)`` when the image model
shares the text encoder's space (same dimension, e.g. open_clip with the MiniLM text tower), falling back
per product to the text vector when it has no usable image. Without an image model it is the text vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.models.images import image_stamp
from seestocks_rank.numeric import normalize_rows
from seestocks_rank.progress import Progress
from seestocks_rank.store.embedding_store import MANIFEST_COLUMNS, PARTIAL_MANIFEST, EmbeddingStore, write_chunk
from seestocks_rank.store.tables import write_parquet_atomic

CONTENT_COLUMNS = ("title", "image_path", "image_stamp", "model_version")


DEFAULT_TEXT_WEIGHT = 0.7


DEFAULT_IMAGE_WEIGHT = 0.3


class ImageEncoder(Protocol):
    """What the pipeline needs from an image model (``seestocks_rank.vision.VisionLanguageModel``)."""

    model_version: str
    dim: int

    def encode_images(self, paths: list[str | None]):  # noqa: ANN201 - returns vision.ImageEmbeddings
        ...


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
    store: EmbeddingStore
    encoded: int
    reused: int
    dropped: int
    compacted: bool
    resumed: int = 0  # rows an interrupted run had encoded, taken from the partial manifest
    images_encoded: int = 0  # of the encoded rows, those whose image went through the image model


def _matching_rows(store: EmbeddingStore | None, keyed: pl.DataFrame, dim: int, image_dim: int | None) -> pl.DataFrame:
    """The rows of ``store`` whose vectors still hold: same vector sizes, same offer and content."""
    if store is None or not store.height or store.dim != dim or store.image_dim != image_dim:
        return pl.DataFrame(schema={c: keyed.schema.get(c, pl.String) for c in MANIFEST_COLUMNS}).cast(
            {"has_image": pl.Boolean, "row": pl.Int64}
        )
    return keyed.join(store.manifest.select(*MANIFEST_COLUMNS), on=["offer_id", *CONTENT_COLUMNS], how="inner").select(
        MANIFEST_COLUMNS
    )


def _encode_slice(
    rows: pl.DataFrame,
    encoder: TextEncoder,
    image_model: ImageEncoder | None,
    image_dim: int | None,
    weights: tuple[float, float],
) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
    """The vectors of ``rows`` (kind -> matrix) and their manifest rows (chunk still unset)."""
    text = encoder.encode(rows.get_column("title").to_list()).reshape(rows.height, encoder.dim)
    arrays = {"text": text}
    rows = rows.with_columns(
        pl.lit(None, pl.String).alias("image_error"),
        pl.lit(False).alias("has_image"),
        pl.lit(None, pl.String).alias("chunk"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
    )
    if image_model is not None:
        image, ok, errors = _encode_images(image_model, rows.get_column("image_path").to_list(), image_dim)
        arrays |= {"image": image, "fused": fuse(text, image, ok, text_weight=weights[0], image_weight=weights[1])}
        rows = rows.with_columns(
            pl.Series("image_error", errors, dtype=pl.String), pl.Series("has_image", ok, dtype=pl.Boolean)
        )
    return arrays, rows.select(MANIFEST_COLUMNS)


def embed_products(
    products: pl.DataFrame,
    encoder: TextEncoder,
    root: str | Path,
    previous: EmbeddingStore | None = None,
    image_model: ImageEncoder | None = None,
    *,
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    image_weight: float = DEFAULT_IMAGE_WEIGHT,
    compact_dead_share: float = 0.3,
    max_chunks: int = 8,
    slice_rows: int = 50_000,
) -> EmbeddingRun:
    """Embed ``products`` (columns ``offer_id, title, image_path``) into the store under ``root``, reusing
    the rows of ``previous`` whose content is unchanged; only the encoded rows are written. Products no
    longer in the catalog are dropped. With ``image_model``, products with an ``image_path`` also get an
    image vector (or an ``image_error``). The returned store is not committed yet.

    The rows to encode go in slices of ``slice_rows``, each written as a chunk and recorded in the partial
    manifest as soon as it is encoded: a run killed two hours into a full re-encode resumes where it
    stopped, not from zero (the partial manifest is dropped when the store is committed)."""
    root = Path(root)
    version = encoder.model_version
    image_dim = None
    if image_model is not None:
        version = f"{version}+{image_model.model_version}+w{text_weight:g}:{image_weight:g}"
        image_dim = image_model.dim
    keyed = products.select(
        pl.col("offer_id").cast(pl.String),
        "title",
        pl.col("image_path").fill_null(""),
        pl.lit(version).alias("model_version"),
    )
    stamps = [image_stamp(p) for p in keyed.get_column("image_path").to_list()] if image_model is not None else None
    keyed = keyed.with_columns(
        pl.Series("image_stamp", stamps, dtype=pl.String) if stamps is not None else pl.lit("").alias("image_stamp")
    )
    reusable = _matching_rows(previous, keyed, encoder.dim, image_dim)
    resumed = _matching_rows(EmbeddingStore.open(root, PARTIAL_MANIFEST), keyed, encoder.dim, image_dim)
    resumed = resumed.join(reusable.select("offer_id"), on="offer_id", how="anti")
    todo = keyed.join(pl.concat([reusable, resumed]).select("offer_id"), on="offer_id", how="anti")
    encoded: list[pl.DataFrame] = [resumed]
    with Progress("encoding products", todo.height, "products") as progress:
        for start in range(0, todo.height, slice_rows):
            arrays, rows = _encode_slice(
                todo.slice(start, slice_rows), encoder, image_model, image_dim, (text_weight, image_weight)
            )
            encoded.append(rows.with_columns(pl.lit(write_chunk(root, arrays)).alias("chunk")))
            write_parquet_atomic(pl.concat(encoded), root / PARTIAL_MANIFEST)
            progress.update(rows.height)
    manifest = pl.concat([reusable, *encoded]).sort("offer_id")
    store = EmbeddingStore(root, manifest, encoder.dim, image_dim)
    dropped = 0 if previous is None else previous.manifest.join(keyed, on="offer_id", how="anti").height
    stored = store.stored_rows() if manifest.height else 0
    compact = manifest.height > 0 and (
        stored - manifest.height > compact_dead_share * stored or manifest.get_column("chunk").n_unique() > max_chunks
    )
    if compact:
        store = store.compacted()
    images = 0 if image_model is None else todo.filter(pl.col("image_path") != "").height
    return EmbeddingRun(
        store=store, encoded=todo.height, reused=reusable.height, dropped=dropped, compacted=compact,
        resumed=resumed.height, images_encoded=images,
    )  # fmt: skip


def _encode_images(
    image_model: ImageEncoder, paths: list[str], dim: int
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    image = np.zeros((len(paths), dim), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    errors: list[str | None] = [None] * len(paths)
    has_path = np.flatnonzero([bool(p) for p in paths])
    if has_path.size:
        result = image_model.encode_images([paths[i] for i in has_path])
        image[has_path] = result.vectors
        ok[has_path] = result.ok
        for i, reason in zip(has_path, result.reasons, strict=True):
            errors[i] = reason
    return image, ok, errors


def image_vectors(rows: pl.DataFrame, store: EmbeddingStore) -> tuple[np.ndarray, np.ndarray] | None:
    """Row-aligned image vectors of ``rows`` (with ``offer_id``) and a mask of the rows that have one,
    or None when the store has no image vector at all (a text-only catalog)."""
    if not store.has_images:
        return None
    ids = rows.get_column("offer_id")
    return store.vectors("image", ids), store.image_mask(ids)
