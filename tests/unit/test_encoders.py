"""Tests for seestocks_rank.encoders: device choice, model versioning and the real MiniLM encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from seestocks_rank.models.device import resolve_device
from seestocks_rank.models.encoders import SentenceTransformerEncoder


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_is_cpu_without_cuda(no_cuda) -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device() == "cpu"


def test_auto_is_cuda_with_cuda(with_cuda) -> None:
    assert resolve_device("auto") == "cuda"


def test_explicit_devices(with_cuda) -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_cpu_always_allowed(no_cuda) -> None:
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_raises(no_cuda, device: str) -> None:
    with pytest.raises(RuntimeError, match=f"device '{device}' requested but CUDA is not available"):
        resolve_device(device)


@pytest.mark.parametrize("device", ["tpu", "mps", "GPU", ""])
def test_unknown_device_raises(no_cuda, device: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown device {device!r}")):
        resolve_device(device)


@pytest.mark.parametrize(
    ("faiss_gpus", "device", "expected"), [(0, "auto", False), (1, "auto", True), (1, "cpu", False)]
)
def test_faiss_runs_on_the_gpu_only_with_a_gpu_build_and_cuda(
    with_cuda, monkeypatch: pytest.MonkeyPatch, faiss_gpus: int, device: str, expected: bool
) -> None:
    import faiss

    from resources import ComputeResource

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: faiss_gpus)
    assert ComputeResource(device=device).faiss_use_gpu() is expected


def test_missing_model_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        SentenceTransformerEncoder(tmp_path, device="cpu")


def test_model_version_tracks_weight_files(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 10)
    (folder / "notes.md").write_text("ignored")
    first = SentenceTransformerEncoder(folder, device="cpu").model_version  # the model itself loads lazily
    assert re.fullmatch(r"my-model@[0-9a-f]{10}", first)
    assert SentenceTransformerEncoder(folder, device="cpu").model_version == first
    (folder / "notes.md").write_text("not a weight file, so still ignored")
    assert SentenceTransformerEncoder(folder, device="cpu").model_version == first
    (folder / "model.safetensors").write_bytes(b"0" * 11)
    assert SentenceTransformerEncoder(folder, device="cpu").model_version != first


@pytest.mark.slow
def test_real_minilm_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    encoder = SentenceTransformerEncoder(device="cpu")
    assert encoder.model_version.startswith("model@")
    vectors = encoder.encode(["red bell peppers", "fresh peppers", "canvas tool bag"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.encode([]).shape == (0, 384)
