"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from seestocks_rank.models.encoders import HashingEncoder as LibraryHashingEncoder


class HashingEncoder(LibraryHashingEncoder):
    """The library's weightless :class:`~seestocks_rank.models.encoders.HashingEncoder` (32 dimensions by
    default) with a settable ``model_version`` and counters: ``encoded`` texts and ``calls`` to :meth:`encode`."""

    def __init__(self, model_version: str = "hashing-v1", dim: int = 32, seed: int = 0):
        super().__init__(dim=dim, seed=seed)
        self.model_version = model_version
        self.encoded = 0
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        return super().encode(texts)


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
