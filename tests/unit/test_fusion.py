"""Tests for seestocks_rank.fusion: grade levels, calibration, group split and the LightGBM ranker."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from seestocks_rank.reranking.fusion import FusionModel, fit_calibration, relevance_levels, train_fusion
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.splits import split_groups


def test_relevance_levels_integer_grades() -> None:
    levels = relevance_levels(pl.Series([0, 3, 1, 2, 3, 0]))
    assert levels.dtype == np.int32
    assert levels.tolist() == [0, 3, 1, 2, 3, 0]


def test_relevance_levels_are_dense() -> None:
    # Unused grades in between do not leave gaps.
    assert relevance_levels(pl.Series([0, 3, 3, 0])).tolist() == [0, 1, 1, 0]
    assert relevance_levels(pl.Series([2, 7, 5])).tolist() == [0, 2, 1]


def test_relevance_levels_home_depot_averages() -> None:
    grades = pl.Series([3.0, 1.0, 1.33, 2.67, 2.0, 1.67, 2.33, 3.0, 1.0])
    assert relevance_levels(grades).tolist() == [6, 0, 1, 5, 3, 2, 4, 6, 0]


def test_relevance_levels_many_distinct_values_use_deciles() -> None:
    levels = relevance_levels(pl.Series(np.arange(100, dtype=np.float64)))
    assert levels.min() == 0 and levels.max() == 10
    assert np.all(np.diff(levels) >= 0)
    assert (levels[5], levels[50], levels[95]) == (0, 5, 9)
    assert len(np.unique(levels)) == 11


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_fit_calibration_recovers_logistic_parameters() -> None:
    rng = np.random.default_rng(0)
    score = rng.normal(0, 2, 20_000)
    relevant = (rng.random(score.size) < _sigmoid(1.5 * score - 0.5)).astype(np.float64)
    a, b = fit_calibration(score, relevant)
    assert a == pytest.approx(1.5, abs=0.1)
    assert b == pytest.approx(-0.5, abs=0.1)


def test_fit_calibration_is_monotone_increasing() -> None:
    rng = np.random.default_rng(1)
    score = rng.uniform(-3, 3, 2000)
    relevant = (score + rng.normal(0, 1, score.size) > 0).astype(np.float64)
    a, b = fit_calibration(score, relevant)
    assert a > 0
    conf = _sigmoid(a * np.array([-2.0, 0.0, 2.0]) + b)
    assert conf[0] < 0.2 < conf[1] < conf[2] and conf[2] > 0.8


def test_fit_calibration_separable_data_stays_finite() -> None:
    score = np.array([-2.0, -1.0, 1.0, 2.0])
    a, b = fit_calibration(score, np.array([0.0, 0.0, 1.0, 1.0]))
    assert math.isfinite(a) and math.isfinite(b) and a > 0


def test_split_groups_deterministic_and_group_exclusive() -> None:
    groups = pl.Series("category_id", np.repeat(np.arange(20), 5))
    mask = split_groups(groups, 0.2, seed=7)
    np.testing.assert_array_equal(mask, split_groups(groups, 0.2, seed=7))
    assert mask.dtype == bool and mask.shape == (100,)
    per_group = mask.reshape(20, 5)
    assert np.all(per_group.all(axis=1) | ~per_group.any(axis=1))  # a group is wholly in or wholly out
    assert per_group[:, 0].sum() == 4  # round(20 * 0.2)
    selections = {tuple(np.flatnonzero(split_groups(groups, 0.2, seed=s).reshape(20, 5)[:, 0])) for s in range(10)}
    assert len(selections) > 1  # the seed matters


def test_split_groups_independent_of_row_order() -> None:
    groups = pl.Series(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] * 2)
    mask = split_groups(groups, 0.3, seed=3)
    chosen = set(groups.filter(pl.Series(mask)).to_list())
    assert len(chosen) == 3
    shuffled = groups.reverse()
    assert set(shuffled.filter(pl.Series(split_groups(shuffled, 0.3, seed=3))).to_list()) == chosen


def test_split_groups_single_group_has_no_validation() -> None:
    assert not split_groups(pl.Series([5, 5, 5]), 0.5, seed=0).any()


def _judged(n_groups: int, per_group: int, seed: int, first_group: int = 0) -> pl.DataFrame:
    """Grades driven by centroid_cosine plus noise; other features are noise, some null."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    cos = rng.uniform(0, 1, n)
    grade = np.clip(np.round(3 * cos + rng.normal(0, 0.35, n)), 0, 3).astype(np.int64)
    price_z = rng.normal(0, 1, n)
    return pl.DataFrame(
        {
            "category_id": np.repeat(np.arange(first_group, first_group + n_groups), per_group),
            "offer_id": [f"o{seed}-{i}" for i in range(n)],
            "centroid_cosine": cos,
            "prompt_cosine": rng.uniform(0, 1, n),
            "name_match": rng.integers(0, 2, n).astype(np.float64),
            "price_z": pl.Series(np.where(rng.random(n) < 0.3, np.nan, price_z)).fill_nan(None),
            "visual_similarity": pl.Series([None] * n, dtype=pl.Float32),
            "grade": grade,
        }
    )


def _ndcg_at(grades_in_order: np.ndarray, k: int = 10) -> float:
    gains = 2.0 ** grades_in_order[:k] - 1
    discounts = 1 / np.log2(np.arange(2, len(gains) + 2))
    ideal = 2.0 ** np.sort(grades_in_order)[::-1][:k] - 1
    best = float(ideal @ discounts[: len(ideal)])
    return float(gains @ discounts) / best if best > 0 else 1.0


@pytest.fixture(scope="module")
def judged() -> pl.DataFrame:
    return _judged(30, 20, seed=0)


@pytest.fixture(scope="module")
def model(judged: pl.DataFrame) -> FusionModel:
    return train_fusion(judged, seed=0)


def test_model_beats_random_order_on_held_out_groups(model: FusionModel) -> None:
    held_out = _judged(10, 20, seed=99, first_group=1000)
    scored = model.predict(held_out)
    rng = np.random.default_rng(5)
    model_ndcg, random_ndcg = [], []
    for _, page in scored.group_by("category_id"):
        grades = page.get_column("grade").to_numpy()
        model_ndcg.append(_ndcg_at(grades[np.argsort(-page.get_column("score").to_numpy(), kind="stable")]))
        random_ndcg.extend(_ndcg_at(grades[rng.permutation(len(grades))]) for _ in range(20))
    assert np.mean(model_ndcg) > np.mean(random_ndcg) + 0.15
    assert np.mean(model_ndcg) > 0.85
    # Higher centroid_cosine -> higher score, overall.
    corr = np.corrcoef(scored.get_column("score").to_numpy(), held_out.get_column("centroid_cosine").to_numpy())[0, 1]
    assert corr > 0.8


def test_predict_adds_score_confidence_and_version(model: FusionModel) -> None:
    df = _judged(2, 10, seed=3)
    out = model.predict(df)
    assert out.columns == [*df.columns, "score", "confidence", "model_version"]
    conf = out.get_column("confidence").to_numpy()
    assert np.all((conf >= 0) & (conf <= 1))
    assert out.get_column("model_version").unique().to_list() == [model.version]
    # Confidence is a monotone function of score (calibration slope is positive).
    assert model.calibration[0] > 0
    order = np.argsort(out.get_column("score").to_numpy(), kind="stable")
    assert np.all(np.diff(conf[order]) >= -1e-12)


def test_model_metadata(model: FusionModel, judged: pl.DataFrame) -> None:
    assert model.features == list(FEATURE_COLUMNS)
    assert len(model.version) == 12
    assert model.metrics["judged_pairs"] == judged.height
    assert model.metrics["train_groups"] + model.metrics["valid_groups"] == 30
    assert model.metrics["valid_groups"] == 6  # round(30 * 0.2)
    assert 0 < model.metrics["valid_ndcg@10"] <= 1
    assert model.metrics["best_iteration"] >= 1


def test_importances_sum_to_one_and_favour_the_driving_feature(model: FusionModel) -> None:
    imp = model.importances()
    assert list(imp) == list(FEATURE_COLUMNS)
    assert sum(imp.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(imp, key=imp.get) == "centroid_cosine"
    assert imp["centroid_cosine"] > 0.5
    assert imp["cross_encoder_score"] == 0.0  # a column absent from the training data


def test_training_is_deterministic(model: FusionModel, judged: pl.DataFrame) -> None:
    again = train_fusion(judged.sample(fraction=1.0, shuffle=True, seed=11), seed=0)  # row order does not matter
    assert again.version == model.version
    assert again.calibration == model.calibration
    probe = _judged(3, 10, seed=4)
    np.testing.assert_array_equal(
        again.predict(probe).get_column("score").to_numpy(), model.predict(probe).get_column("score").to_numpy()
    )


def test_save_load_round_trip(model: FusionModel, tmp_path) -> None:
    folder = model.save(tmp_path / "fusion")
    loaded = FusionModel.load(folder)
    assert loaded.version == model.version
    assert loaded.features == model.features
    assert loaded.calibration == pytest.approx(model.calibration, rel=0, abs=0)
    assert loaded.metrics == model.metrics
    probe = _judged(3, 10, seed=5)
    a = model.predict(probe)
    b = loaded.predict(probe)
    np.testing.assert_array_equal(a.get_column("score").to_numpy(), b.get_column("score").to_numpy())
    np.testing.assert_array_equal(a.get_column("confidence").to_numpy(), b.get_column("confidence").to_numpy())


def test_load_missing_model_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.json missing"):
        FusionModel.load(tmp_path)


def test_predict_accepts_nulls_and_missing_columns(model: FusionModel) -> None:
    df = pl.DataFrame(
        {
            "centroid_cosine": [0.9, None, 0.1],
            "price_z": pl.Series([None, None, None], dtype=pl.Float32),
            "name_match": pl.Series([1.0, 0.0, None], dtype=pl.Float32),
        }
    )
    out = model.predict(df)  # other feature columns are absent entirely
    assert out.height == 3
    assert np.all(np.isfinite(out.get_column("score").to_numpy()))
    assert out.get_column("score")[0] > out.get_column("score")[2]


def test_predict_empty_frame(model: FusionModel) -> None:
    out = model.predict(_judged(1, 1, seed=0).clear())
    assert out.height == 0
    assert {"score", "confidence", "model_version"} <= set(out.columns)


def test_train_rejects_empty_judgments() -> None:
    with pytest.raises(ValueError, match="no judged pairs"):
        train_fusion(_judged(1, 1, seed=0).clear())


def test_train_with_home_depot_grades_and_explicit_threshold() -> None:
    judged = _judged(12, 15, seed=8).with_columns(
        (1.0 + pl.col("grade").cast(pl.Float64) * 2 / 3).round(2).alias("grade")  # 1.00, 1.67, 2.33, 3.00
    )
    model = train_fusion(judged, seed=1, relevant_min=2.33, num_boost_round=60)
    scored = model.predict(judged)
    relevant = scored.filter(pl.col("grade") >= 2.33).get_column("confidence").mean()
    irrelevant = scored.filter(pl.col("grade") < 2.33).get_column("confidence").mean()
    assert relevant > irrelevant + 0.3
