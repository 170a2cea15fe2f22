"""The image model's cadence through Dagster: nights with unchanged images re-embed nothing, a few new
products keep the served model and embed only their images, drift past the threshold or a requested
retrain trains again."""

import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.definitions import all_assets, build_resources
from resources import TextModelResource, VisionModelResource
from seestocks_rank.models.vlm_cadence import SERVED_FILE
from seestocks_rank.synthetic.demo import generate_demo
from tests.dagster.conftest import FAST_SETTINGS

SELECTION = ["taxonomy", "catalog", "quarantine", "vlm_checkpoint", "product_embeddings"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """The tiny model gains nothing from threads on a shared CPU (see tests/conftest.py)."""


def _night(instance: dg.DagsterInstance, root: Path, **vision: object) -> tuple[dict, dict]:
    resources = build_resources(str(root), FAST_SETTINGS)
    resources["text_model"] = TextModelResource(compute=resources["compute"], kind="hashing")
    resources["vision"] = VisionModelResource(
        architecture="rn-tiny", device="cpu", train_minutes=0.1, train_max_epochs=1.0, train_batch_size=32, **vision
    )
    result = dg.materialize(all_assets, instance=instance, resources=resources, selection=SELECTION)
    assert result.success

    def metadata(asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    return metadata("vlm_checkpoint"), metadata("product_embeddings")


def _add_products(demo: Path, n: int) -> None:
    """``n`` new offers with new titles and new image files (copies of existing ones)."""
    catalog = pl.read_csv(demo / "catalog.csv", infer_schema=False)
    new = catalog.filter(pl.col("image_path").is_not_null()).head(n)
    paths = [f"images/new_{i}.png" for i in range(n)]
    for source, target in zip(new.get_column("image_path"), paths, strict=True):
        shutil.copy(demo / source, demo / target)
    new = new.with_columns(
        pl.col("product_id") + "-NEW", pl.col("title") + " (new edition)", pl.Series("image_path", paths)
    )
    pl.concat([catalog, new]).write_csv(demo / "catalog.csv")


def test_the_served_image_model_is_kept_until_drift_or_a_retrain(tmp_path: Path) -> None:
    demo = generate_demo(tmp_path / "demo", n_products=200, n_retailers=2, seed=5, images=True).root
    instance = dg.DagsterInstance.ephemeral()

    first, emb = _night(instance, tmp_path)
    assert first["status"] == "trained" and first["reason"] == "no served model"
    assert emb["images_encoded"] == emb["with_image_embedding"] > 0
    served_model = emb["image_model_version"]
    served = json.loads((tmp_path / "models" / "vlm" / SERVED_FILE).read_text())
    assert served["version"] == first["version"]

    # A night with unchanged images: the model is kept and nothing is re-embedded.
    second, emb = _night(instance, tmp_path)
    assert second["status"] == "kept" and second["version"] == first["version"]
    assert second["drift_share"] == 0.0 and second["new_pairs"] == 0
    assert (emb["encoded"], emb["images_encoded"]) == (0, 0) and emb["reused"] == emb["rows"]
    assert emb["image_model_version"] == served_model

    # A few new products (well under the threshold): the model is kept, only their images are encoded.
    _add_products(demo, 5)
    third, emb = _night(instance, tmp_path)
    assert third["status"] == "kept" and third["version"] == first["version"]
    assert third["new_pairs"] == 5 and 0 < third["drift_share"] <= third["drift_threshold"] == 0.25
    assert (emb["encoded"], emb["images_encoded"]) == (5, 5)
    assert emb["image_model_version"] == served_model

    # The same drift with a stricter threshold: trained again, a new version, every image re-embedded.
    fourth, emb = _night(instance, tmp_path, drift_threshold=0.01)
    assert fourth["status"] == "trained" and fourth["version"] != first["version"]
    assert emb["image_model_version"] != served_model
    assert "drift" in fourth["reason"] and fourth["drift_share"] > 0.01
    assert emb["images_encoded"] == emb["with_image_embedding"] == emb["rows"] - _without_image(tmp_path)
    assert json.loads((tmp_path / "models" / "vlm" / SERVED_FILE).read_text())["version"] == fourth["version"]

    # Back to the default threshold: the newly served model is kept.
    fifth, emb = _night(instance, tmp_path)
    assert fifth["status"] == "kept" and fifth["version"] == fourth["version"] and emb["images_encoded"] == 0

    # A retrain asked for: trained on the same pairs (same version folder, rewritten whole), re-embedded.
    sixth, emb = _night(instance, tmp_path, retrain=True)
    assert sixth["status"] == "trained" and sixth["reason"] == "retrain requested"
    assert emb["images_encoded"] == emb["with_image_embedding"]
    assert not [p for p in (tmp_path / "models" / "vlm").iterdir() if p.name.startswith(".")]

    # Other training settings: trained for them; back to the first settings: that training is reused as is.
    seventh, _ = _night(instance, tmp_path, train_lr=5e-4)
    assert seventh["status"] == "trained" and "setup changed" in seventh["reason"]
    eighth, emb = _night(instance, tmp_path)
    assert (
        eighth["status"] == "reused" and eighth["version"] == sixth["version"] and "setup changed" in eighth["reason"]
    )
    assert json.loads((tmp_path / "models" / "vlm" / SERVED_FILE).read_text())["version"] == sixth["version"]


def _without_image(root: Path) -> int:
    from seestocks_rank.store.embedding_store import EmbeddingStore

    return int((~EmbeddingStore.open(root / "embeddings").image_mask()).sum())
