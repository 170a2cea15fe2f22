"""The cadence of the image model: keep the served model until a retrain is asked for, the setup changes or
the catalog drifts past the threshold; the served pointer and model folders are never half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seestocks_rank.models.images import image_stamp
from seestocks_rank.models.vlm_cadence import (
    DEFAULT_DRIFT_THRESHOLD,
    SERVED_FILE,
    decide,
    drift,
    install,
    pair_keys,
    read_pairs,
    read_served,
    setup_key,
    staging_folder,
    write_pairs,
    write_served,
)
from seestocks_rank.models.vlm_training import TrainConfig

SETUP = setup_key("rn-tiny", "rn-tiny@random-seed0", TrainConfig())


def _keys(n: int, prefix: str = "p") -> list[str]:
    return pair_keys([f"{prefix}{i}.png" for i in range(n)], [f"title {i}" for i in range(n)])


def test_drift_counts_new_and_removed_pairs() -> None:
    trained, current = _keys(10), _keys(8) + _keys(2, "new")
    change = drift(current, trained)
    assert (change.current, change.trained, change.new, change.removed) == (10, 10, 2, 2)
    assert change.new_share == pytest.approx(0.2) and change.removed_share == pytest.approx(0.2)
    assert drift([], []).new_share == 0.0


def test_unchanged_or_slightly_changed_catalog_keeps_the_model() -> None:
    trained = _keys(100)
    same = decide(trained, SETUP, served_setup=SETUP, served_pairs=trained)
    assert same.keep and same.drift.new == 0 and same.threshold == DEFAULT_DRIFT_THRESHOLD
    grown = decide(trained + _keys(25, "new"), SETUP, served_setup=SETUP, served_pairs=trained)  # 25/125 = 0.2
    assert grown.keep and grown.drift.new == 25 and "0.200 <= threshold 0.25" in grown.reason
    at = decide(_keys(75) + _keys(25, "new"), SETUP, served_setup=SETUP, served_pairs=trained)  # exactly 0.25
    assert at.keep


def test_drift_past_the_threshold_retrains() -> None:
    trained = _keys(100)
    over = decide(_keys(70) + _keys(30, "new"), SETUP, served_setup=SETUP, served_pairs=trained)
    assert not over.keep and over.drift.new_share == pytest.approx(0.3) and "drift 0.300 > threshold" in over.reason
    strict = decide(_keys(99) + _keys(1, "new"), SETUP, served_setup=SETUP, served_pairs=trained, threshold=0.0)
    assert not strict.keep
    lax = decide(_keys(100, "new"), SETUP, served_setup=SETUP, served_pairs=trained, threshold=1.0)
    assert lax.keep


def test_retrain_flag_setup_change_and_no_served_model_train() -> None:
    trained = _keys(10)
    asked = decide(trained, SETUP, served_setup=SETUP, served_pairs=trained, retrain=True)
    assert not asked.keep and asked.reason == "retrain requested" and asked.drift.new == 0
    for other in (
        setup_key("rn-mini-minilm", "rn-mini-minilm@random-seed0", TrainConfig()),
        setup_key("rn-tiny", "rn-tiny@0123abcd", TrainConfig()),  # another start checkpoint
        setup_key("rn-tiny", "rn-tiny@random-seed0", TrainConfig(lr=5e-4)),
    ):
        changed = decide(trained, other, served_setup=SETUP, served_pairs=trained)
        assert not changed.keep and "setup changed" in changed.reason
    assert not decide(trained, SETUP, served_setup=None, served_pairs=None).keep


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_threshold_out_of_range_is_a_clear_error(threshold: float) -> None:
    with pytest.raises(ValueError, match="drift_threshold"):
        decide([], SETUP, served_setup=SETUP, served_pairs=[], threshold=threshold)


def test_resource_validates_its_threshold() -> None:
    from resources import VisionModelResource

    assert VisionModelResource().checked_drift_threshold() == DEFAULT_DRIFT_THRESHOLD
    assert not VisionModelResource().retrain
    with pytest.raises(ValueError, match="drift_threshold 2"):
        VisionModelResource(drift_threshold=2.0).checked_drift_threshold()


def test_an_image_replaced_in_place_is_a_new_pair(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    before = pair_keys([str(image)], ["shirt"], [image_stamp(image)])
    image.write_bytes(b"other bytes")
    os.utime(image, ns=(1, 1))
    after = pair_keys([str(image)], ["shirt"], [image_stamp(image)])
    assert before != after and image_stamp(tmp_path / "missing.png") == "" and image_stamp(None) == ""
    assert pair_keys(["a", "a"], ["t", "t"]) == pair_keys(["a"], ["t"])  # distinct pairs only


def test_served_pointer_names_only_a_whole_model(tmp_path: Path) -> None:
    assert read_served(tmp_path) is None
    staging = staging_folder(tmp_path, "v1")
    staging.mkdir()
    (staging / "checkpoint.pt").write_bytes(b"weights")
    write_pairs(staging, _keys(3))
    folder = install(staging, tmp_path / "v1")
    write_served(tmp_path, "v1", SETUP)
    served = read_served(tmp_path, required=("checkpoint.pt",))
    assert served.version == "v1" and served.folder == folder and served.setup == SETUP
    assert read_pairs(folder) == _keys(3)
    assert read_served(tmp_path, required=("meta.json",)) is None  # a folder missing a file is not served
    (tmp_path / SERVED_FILE).write_text("{not json")
    assert read_served(tmp_path) is None


def test_install_replaces_a_folder_and_a_new_staging_clears_stale_ones(tmp_path: Path) -> None:
    old = tmp_path / "v1"
    old.mkdir()
    (old / "checkpoint.pt").write_bytes(b"old")
    leftover = tmp_path / ".v1.staging-dead"  # a run killed mid-training
    leftover.mkdir()
    staging = staging_folder(tmp_path, "v1")
    assert not leftover.exists()
    staging.mkdir()
    (staging / "checkpoint.pt").write_bytes(b"new")
    install(staging, old)
    assert (old / "checkpoint.pt").read_bytes() == b"new" and not staging.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]
