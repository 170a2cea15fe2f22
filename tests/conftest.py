"""Shared test fixtures."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np
import pytest

_WORD = re.compile(r"[0-9a-z]+")


class HashingEncoder:
    """A deterministic stand-in for a text model (implements ``seestocks_rank.encoders.TextEncoder``).

    Each lower-cased word token maps to a fixed Gaussian vector seeded from ``sha256(seed:token)``;
    a text's vector is the L2-normalised sum of its tokens' vectors, so texts sharing words are close.
    ``encoded`` counts the texts encoded so far and ``calls`` the calls to :meth:`encode`.
    """

    def __init__(self, model_version: str = "hashing-v1", dim: int = 32, seed: int = 0):
        self.model_version = model_version
        self.dim = dim
        self.seed = seed
        self.encoded = 0
        self.calls = 0

    def token_vector(self, token: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}:{token}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return rng.standard_normal(self.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            tokens = _WORD.findall(text.lower()) or [""]
            for token in tokens:
                out[i] += self.token_vector(token)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)


@pytest.fixture
def make_hashing_encoder() -> Callable[..., HashingEncoder]:
    """Factory: ``make_hashing_encoder(model_version="hashing-v2", dim=32, seed=0)``."""
    return HashingEncoder


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    """A fresh ``HashingEncoder`` (``model_version="hashing-v1"``, ``dim=32``) with zeroed counters."""
    return HashingEncoder()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared CPU two threads can be 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
