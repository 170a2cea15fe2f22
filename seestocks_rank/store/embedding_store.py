"""Product vectors on disk: memory-mapped ``.npy`` chunks and a small manifest table.

The catalog's vectors never live in Python objects or Parquet list columns: each run writes the vectors it
encoded as one new chunk (``chunks/<id>/text.npy``, plus ``image.npy`` and ``fused.npy`` with an image
model) and a manifest (``manifest.parquet``: ``offer_id``, the content the vectors depend on (title, image
path, the image file's size and mtime, model version), ``chunk``, ``row``) that maps every offer to its row.
Readers memory-map the chunks and gather only the rows they need, so a nightly run that re-encodes 1% of
the catalog writes 1% of the vectors. When too much of the stored rows are dead (replaced or removed
offers), the live rows are compacted into one chunk.

The manifest is the commit point: it is replaced atomically, the previous one is kept as
``manifest.previous.parquet``, and only chunks referenced by neither (nor by the partial manifest of a run
in progress) are deleted, so a failed run never breaks the last good store.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.store.failpoints import failpoint
from seestocks_rank.store.tables import write_parquet_atomic

MANIFEST = "manifest.parquet"


PREVIOUS_MANIFEST = "manifest.previous.parquet"


# the rows a run has encoded so far, before it commits: the next run resumes from them if this one dies
PARTIAL_MANIFEST = "manifest.partial.parquet"


CHUNKS = "chunks"


KINDS = ("text", "image", "fused")


MANIFEST_COLUMNS = (
    "offer_id", "title", "image_path", "image_stamp", "model_version", "image_error", "has_image", "chunk", "row",
)  # fmt: skip


_GATHER_ROWS = 65_536


def new_chunk_id() -> str:
    return f"{time.time_ns():x}-{uuid.uuid4().hex[:6]}"


def write_chunk(root: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` (kind -> ``[n, dim]``) as a new chunk folder; returns its id."""
    chunk = new_chunk_id()
    folder = Path(root) / CHUNKS / chunk
    tmp = folder.with_name(f".{chunk}.tmp")
    tmp.mkdir(parents=True)
    for kind, matrix in arrays.items():
        np.save(tmp / f"{kind}.npy", np.ascontiguousarray(matrix, dtype=np.float32))
    tmp.rename(folder)
    return chunk


def _is_whole_chunk(store: EmbeddingStore, chunk: np.ndarray, rows: np.ndarray) -> bool:
    """True when the rows are exactly one chunk's rows 0..n-1 in order."""
    return (
        chunk[0] == chunk[-1]
        and rows[0] == 0
        and (chunk == chunk[0]).all()
        and store._array(chunk[0], "text").shape[0] == len(rows)
        and bool((np.diff(rows) == 1).all())
    )


@dataclass
class EmbeddingStore:
    """The vectors of a set of offers: ``manifest`` (see :data:`MANIFEST_COLUMNS`) over chunk files under
    ``root``. ``dim``/``image_dim`` are the text and image vector sizes (``image_dim`` None: text only)."""

    root: Path
    manifest: pl.DataFrame
    dim: int
    image_dim: int | None = None
    _arrays: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ on disk
    @classmethod
    def open(cls, root: str | Path, manifest_name: str = MANIFEST) -> EmbeddingStore | None:
        """The committed store under ``root``, or None when there is none yet."""
        path = Path(root) / manifest_name
        if not path.exists():
            return None
        manifest = pl.read_parquet(path)
        if "image_stamp" not in manifest.columns:  # a store from before image stamps: its images re-encode once
            manifest = manifest.with_columns(pl.lit("").alias("image_stamp")).select(MANIFEST_COLUMNS)
        store = cls(Path(root), manifest, 0)  # an empty store has no dimension: anything re-encodes into it
        chunks = manifest.get_column("chunk").unique().sort().to_list()
        if chunks:
            store.dim = store._array(chunks[0], "text").shape[1]
            with_images = [c for c in chunks if (store._chunk_dir(c) / "image.npy").exists()]
            store.image_dim = store._array(with_images[0], "image").shape[1] if with_images else None
        return store

    def commit(self) -> Path:
        """Make this the store's current manifest (atomically) and delete chunks no manifest uses."""
        failpoint("embeddings.chunk_written")
        self.root.mkdir(parents=True, exist_ok=True)
        current = self.root / MANIFEST
        if current.exists():
            current.replace(self.root / PREVIOUS_MANIFEST)
        write_parquet_atomic(self.manifest, current)
        (self.root / PARTIAL_MANIFEST).unlink(missing_ok=True)
        self.collect_garbage()
        return current

    def collect_garbage(self) -> list[str]:
        """Delete chunk folders referenced by no manifest (current, previous or partial)."""
        keep = set(self.manifest.get_column("chunk").unique().to_list())
        for name in (PREVIOUS_MANIFEST, PARTIAL_MANIFEST):
            if (self.root / name).exists():
                keep |= set(pl.read_parquet(self.root / name, columns=["chunk"]).get_column("chunk").unique().to_list())
        removed = []
        for folder in sorted((self.root / CHUNKS).glob("*")) if (self.root / CHUNKS).exists() else []:
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def _chunk_dir(self, chunk: str) -> Path:
        return self.root / CHUNKS / chunk

    def _array(self, chunk: str, kind: str) -> np.ndarray:
        key = (chunk, kind)
        if key not in self._arrays:
            path = self._chunk_dir(chunk) / f"{kind}.npy"
            if kind == "fused" and not path.exists():  # text-only chunks: the retrieval vector is the text one
                return self._array(chunk, "text")
            if not path.exists():
                raise FileNotFoundError(f"embedding chunk {chunk} has no {kind} vectors ({path})")
            self._arrays[key] = np.load(path, mmap_mode="r")
        return self._arrays[key]

    # ------------------------------------------------------------------ reading
    @property
    def height(self) -> int:
        return self.manifest.height

    @property
    def has_images(self) -> bool:
        return self.image_dim is not None and bool(self.manifest.get_column("has_image").any())

    def positions(self, offer_ids: pl.Series) -> pl.DataFrame:
        """``chunk, row`` for each of ``offer_ids`` (in order); raises naming an offer without vectors."""
        found = (
            pl.DataFrame({"offer_id": offer_ids.cast(pl.String)})
            .join(self.manifest.select("offer_id", "chunk", "row", "has_image"), on="offer_id", how="left",
                  maintain_order="left")
        )  # fmt: skip
        missing = found.get_column("row").is_null()
        if missing.any():
            example = found.get_column("offer_id")[int(missing.arg_max())]
            raise ValueError(
                f"{int(missing.sum())} offer(s) have no embedding, e.g. {example!r}: re-materialize product_embeddings"
            )
        return found

    def vectors(self, kind: str = "fused", offer_ids: pl.Series | None = None) -> np.ndarray:
        """``[n, dim]`` float32 vectors of ``offer_ids`` (default: the manifest's order), gathered from the
        memory-mapped chunks. ``image`` rows of offers without an image are zero (see :meth:`image_mask`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown vector kind {kind!r}: use one of {KINDS}")
        found = self.manifest if offer_ids is None else self.positions(offer_ids)
        dim = self.image_dim if kind == "image" else self.dim
        if dim is None:
            raise ValueError("this store has no image vectors")
        chunk = found.get_column("chunk").to_numpy()
        rows = found.get_column("row").to_numpy().astype(np.int64)
        if kind != "image" and len(rows) and _is_whole_chunk(self, chunk, rows):
            return self._array(chunk[0], kind)  # zero-copy: the memory map itself, read-only
        out = np.zeros((found.height, dim), dtype=np.float32)
        for name in np.unique(chunk):  # a loop over the store's few chunks
            where = np.flatnonzero(chunk == name)
            if kind == "image" and not (self._chunk_dir(name) / "image.npy").exists():
                continue
            source = self._array(name, kind)
            for start in range(0, len(where), _GATHER_ROWS):  # bounded reads from the memory map
                sl = where[start : start + _GATHER_ROWS]
                out[sl] = source[rows[sl]]
        if kind == "image":
            out[~found.get_column("has_image").to_numpy()] = 0.0
        return out

    def image_mask(self, offer_ids: pl.Series | None = None) -> np.ndarray:
        found = self.manifest if offer_ids is None else self.positions(offer_ids)
        return found.get_column("has_image").to_numpy().astype(bool)

    # ------------------------------------------------------------------ maintenance
    def stored_rows(self) -> int:
        """Rows held by the chunks this manifest uses (live or dead)."""
        return sum(self._array(c, "text").shape[0] for c in self.manifest.get_column("chunk").unique().to_list())

    def compacted(self) -> EmbeddingStore:
        """A copy whose live rows sit in one new chunk, in manifest order (not committed), copied in
        bounded blocks so compaction never holds the catalog's vectors in memory."""
        chunk = new_chunk_id()
        tmp = self.root / CHUNKS / f".{chunk}.tmp"
        tmp.mkdir(parents=True)
        kinds = ("text",) if self.image_dim is None else KINDS
        for kind in kinds:
            dim = self.image_dim if kind == "image" else self.dim
            target = np.lib.format.open_memmap(tmp / f"{kind}.npy", mode="w+", dtype=np.float32,
                                               shape=(self.height, dim))  # fmt: skip
            for start in range(0, self.height, _GATHER_ROWS):
                block = self.manifest.slice(start, _GATHER_ROWS)
                part = EmbeddingStore(self.root, block, self.dim, self.image_dim, self._arrays)
                target[start : start + block.height] = part.vectors(kind)
            target.flush()
            del target
        tmp.rename(self.root / CHUNKS / chunk)
        manifest = self.manifest.with_columns(
            pl.lit(chunk).alias("chunk"), pl.int_range(pl.len(), dtype=pl.Int64).alias("row")
        )
        return EmbeddingStore(self.root, manifest, self.dim, self.image_dim)
