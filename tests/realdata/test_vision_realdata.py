"""The image path on real product photos: a small slice of ../shared/data/fashion_products (60x80 JPEGs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.benchmarks.vision import read_labels, run_bench, write_fashion_labels
from seestocks_rank.models.images import load_image
from seestocks_rank.models.vision import load_vision_model

FASHION = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fashion_products"
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (FASHION / "sample_styles.csv").exists(),
        reason=f"fashion photos not available at {FASHION} (../shared/data is absent)",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs with one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fashion_labels(FASHION, tmp_path_factory.mktemp("fashion") / "labels.csv")


@pytest.fixture(scope="module")
def slice_labels(labels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 photos: 20 from each of three article types in three different master categories."""
    table = read_labels(labels)
    table = table.with_columns(pl.col("category_path").str.split(" > ").list.last().alias("leaf"))
    picked = table.filter(pl.col("leaf").is_in(["Tshirts", "Watches", "Casual Shoes"]))
    picked = picked.sort("image").group_by("leaf", maintain_order=True).head(20)
    out = tmp_path_factory.mktemp("slice") / "labels.csv"
    picked.select("image", "title", "category_path").write_csv(out)
    return out


def test_fashion_labels_file(labels: Path) -> None:
    table = read_labels(labels)
    assert table.height > 2000
    depth = table.get_column("category_path").str.split(" > ").list.len()
    assert depth.min() == depth.max() == 3


def test_real_photos_load_and_embed(slice_labels: Path) -> None:
    paths = read_labels(slice_labels).get_column("image").to_list()
    loaded = [load_image(p) for p in paths]
    assert all(x.reason is None for x in loaded)
    assert all(max(x.image.size) <= 2400 for x in loaded)
    model = load_vision_model("rn-tiny", device="cpu", batch_size=16)
    out = model.encode_images([*paths[:10], str(FASHION / "images" / "no-such-id.jpg")])
    assert out.ok.tolist() == [True] * 10 + [False] and out.reasons[-1] == "missing_file"
    np.testing.assert_allclose(np.linalg.norm(out.vectors[:10], axis=1), 1.0, atol=1e-5)


def test_bench_vision_on_a_slice(slice_labels: Path) -> None:
    out = run_bench(slice_labels, minutes=0.05, architecture="rn-tiny", batch_size=16, device="cpu")
    json.dumps(out)  # one JSON object
    assert out["data"]["rows"] == 60 and out["data"]["test_rows"] == 12
    assert set(out["levels"]) == {"level_1", "level_2", "level_3"}
    level = out["levels"]["level_3"]
    assert level["classes"] == 3 and level["chance"] == pytest.approx(1 / 3, abs=1e-3)
    for model in ("untrained", "trained"):
        assert set(level[model]) == {"name", "subtree", "leaf_rollup"}
        assert all(0.0 <= v <= 1.0 for v in level[model].values())
    assert out["train"]["steps"] > 0
