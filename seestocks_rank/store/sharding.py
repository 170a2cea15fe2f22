"""Product shards: the catalog split by a hash of the offer id, and the shards' vector stores merged.

Each offer belongs to shard ``fnv1a64(offer_id) % n_shards``. FNV-1a over the id's UTF-8 bytes is fixed
by its definition, so an offer lands in the same shard on every machine, in every process and after any
library upgrade (polars' ``Series.hash`` is only stable within one polars version, and a reshuffle would
re-encode the whole catalog). Changing ``n_shards`` moves most offers, so choose it once, generously.

Every shard is an ordinary :class:`~seestocks_rank.embedding_store.EmbeddingStore` embedded on its own
(incrementally, in parallel with the others). :func:`merge_shard_stores` makes one store of them without
copying vectors: chunk files are immutable once written and their ids unique, so the merged store
hard-links each shard's chunk folders into its own ``chunks/`` (a copy when the roots sit on different
filesystems) and concatenates the manifests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from seestocks_rank.store.embedding_store import CHUNKS, MANIFEST_COLUMNS, EmbeddingStore
from seestocks_rank.store.tables import exclusive_lock

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)


_FNV_PRIME = np.uint64(0x100000001B3)


MERGE_LOCK = ".merge.lock"


def stable_hash(values: pl.Series) -> np.ndarray:
    """64-bit FNV-1a of each value's UTF-8 bytes (``uint64``), vectorised: one pass per byte position
    over the values still that long (offer ids are short)."""
    if values.null_count():
        raise ValueError(f"cannot shard {values.null_count()} null id(s)")
    arr = values.cast(pl.String).rechunk().to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    _, offsets_buf, data_buf = arr.buffers()
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: the values still going are a prefix
    starts, lengths = offsets[:-1][order], lengths[order]
    hashes = np.full(len(arr), _FNV_OFFSET, dtype=np.uint64)
    for k in range(int(lengths[0])):
        live = int(np.count_nonzero(lengths > k))
        hashes[:live] = (hashes[:live] ^ data[starts[:live] + k]) * _FNV_PRIME  # wraps mod 2**64
    out = np.empty_like(hashes)
    out[order] = hashes
    return out


def shard_of(offer_ids: pl.Series, n_shards: int) -> np.ndarray:
    """The shard (``0 .. n_shards - 1``, ``int64``) of each offer id."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return (stable_hash(offer_ids) % np.uint64(n_shards)).astype(np.int64)


def shard_rows(catalog: pl.DataFrame, shard: int, n_shards: int) -> pl.DataFrame:
    """The rows of ``catalog`` (with ``offer_id``) that belong to ``shard``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    return catalog.filter(pl.Series(shard_of(catalog.get_column("offer_id"), n_shards) == shard))


def _link_chunk(source: Path, target: Path) -> None:
    """Hard-link (else copy) a chunk folder's files into ``target``, appearing atomically."""
    if target.exists():  # chunks are immutable and their ids unique: already there from an earlier merge
        return
    if not source.is_dir():
        raise FileNotFoundError(f"embedding chunk {source} is gone: re-materialize its shard")
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file in source.iterdir():
        try:
            os.link(file, tmp / file.name)
        except OSError:  # another filesystem, or no hard links there
            shutil.copy2(file, tmp / file.name)
    tmp.rename(target)


def merge_shard_stores(shard_roots: list[Path], root: str | Path) -> EmbeddingStore:
    """One committed store under ``root`` holding every shard's vectors (manifest sorted by ``offer_id``).

    Raises when a shard has no store yet, when an offer is in two shards, or when the shards were embedded
    with different models (a partial re-run after a model change). Concurrent merges into the same
    ``root`` queue on a file lock, so one never collects the other's freshly linked chunks."""
    root = Path(root)
    stores = []
    for shard_root in shard_roots:
        store = EmbeddingStore.open(shard_root)
        if store is None:
            raise FileNotFoundError(f"no embedding store under {shard_root}: materialize that shard first")
        stores.append(store)
    filled = [s for s in stores if s.height]
    shapes = {(s.dim, s.image_dim) for s in filled}
    if len(shapes) > 1:
        raise ValueError(f"shards have different vector sizes (dim, image_dim): {sorted(shapes, key=str)}")
    dim, image_dim = shapes.pop() if shapes else (0, None)
    owner: dict[str, Path] = {}
    for store in filled:
        for chunk in store.manifest.get_column("chunk").unique().to_list():
            if chunk in owner:
                raise ValueError(f"chunk {chunk} is used by two shards ({owner[chunk]} and {store.root})")
            owner[chunk] = store.root
    manifest = pl.concat([s.manifest.select(MANIFEST_COLUMNS) for s in stores], how="vertical_relaxed")
    manifest = manifest.sort("offer_id")
    duplicated = manifest.get_column("offer_id").is_duplicated()
    if duplicated.any():
        example = manifest.get_column("offer_id").filter(duplicated)[0]
        raise ValueError(f"{int(duplicated.sum())} rows are in more than one shard, e.g. {example!r}")
    versions = manifest.get_column("model_version").unique().sort().to_list()
    if len(versions) > 1:
        raise ValueError(f"shards were embedded with different models {versions}: re-materialize every shard")
    with exclusive_lock(root / MERGE_LOCK):
        for chunk, shard_root in owner.items():
            _link_chunk(shard_root / CHUNKS / chunk, root / CHUNKS / chunk)
        merged = EmbeddingStore(root, manifest, dim, image_dim)
        merged.commit()
    return merged
