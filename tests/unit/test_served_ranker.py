"""The served ranker is leak-free: out-of-fold cross-encoder scores, held-out calibration, and the same
cross-validated selection rule as ``seestocks-rank train``."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import seestocks_rank.models.cross_encoder as cross_encoder_module
from seestocks_rank.evaluation.out_of_fold import (
    fit_cross_encoder_out_of_fold,
    leak_free_cross_encoder_scores,
    read_out_of_fold,
    write_out_of_fold,
)
from seestocks_rank.evaluation.selection import LinearBlend, load_ranker, select_fusion_ranker
from seestocks_rank.reranking.calibration import expected_calibration_error, held_out_calibration, sigmoid
from seestocks_rank.reranking.ranker import PAGE_Z_SUFFIX, score_candidates, train_served_ranker, with_page_z
from seestocks_rank.reranking.signals import FEATURE_COLUMNS


class _RecordingCrossEncoder:
    """Stands in for the MiniLM cross-encoder: remembers the pairs it trained on and refuses to score
    any of them."""

    made: list[_RecordingCrossEncoder] = []

    def __init__(self) -> None:
        self.trained: set[tuple[str, str]] = set()
        self.version = f"fake{len(self.made)}"
        self.made.append(self)

    @classmethod
    def from_pretrained(cls, **_: object) -> _RecordingCrossEncoder:
        return cls()

    def train(self, contexts, titles, labels, **_: object):  # noqa: ANN001, ANN201
        self.trained |= set(zip(contexts, titles, strict=True))

        class Report:
            pass

        report = Report()
        report.__dict__.update(steps=1, pairs_seen=len(titles), epochs=1.0, seconds=0.0, pairs_per_second=1.0)
        return report

    def score(self, contexts, titles):  # noqa: ANN001, ANN201
        pairs = list(zip(contexts, titles, strict=True))
        assert not self.trained & set(pairs), "a model scored a pair it trained on"
        return np.array([len(t) / 10 for t in titles], dtype=np.float32)


def _rows(pages: int, per_page: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "query_id": [str(p) for p in range(pages) for _ in range(per_page)],
            "query": [f"page {p}" for p in range(pages) for _ in range(per_page)],
            "product_id": [f"o{p}-{i}" for p in range(pages) for i in range(per_page)],
            "title": [f"title {p} {i}" for p in range(pages) for i in range(per_page)],
            "grade": [float(i % 4) for p in range(pages) for i in range(per_page)],
        }
    )


def test_out_of_fold_scores_come_from_models_that_never_saw_the_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    _RecordingCrossEncoder.made = []
    monkeypatch.setattr(cross_encoder_module, "CrossEncoder", _RecordingCrossEncoder)
    rows = _rows(7, 5)
    served, table, record = fit_cross_encoder_out_of_fold(
        rows, folds=3, budget_s=6.0, max_epochs=1.0, seed=0, device="cpu", log=lambda _: None
    )
    folds, refit = _RecordingCrossEncoder.made[:-1], _RecordingCrossEncoder.made[-1]
    assert served is refit and len(folds) == 3 and record["folds"] == 3
    assert len(refit.trained) == rows.height  # the served model is refit on every pair
    assert table.get_column("cross_encoder_oof").null_count() == 0  # every pair scored out of fold
    assert table.select("query_id", "product_id").equals(rows.select("query_id", "product_id"))
    # pages are grouped: a page's pairs share one fold, and its fold's model trained on none of them
    assert (table.group_by("query_id").agg(pl.col("fold").n_unique()).get_column("fold") == 1).all()
    for fold, model in enumerate(folds):
        held = rows.filter(pl.Series(table.get_column("fold") == fold))
        assert held.height and not model.trained & set(zip(held["query"], held["title"], strict=True))


def test_a_single_page_gets_no_out_of_fold_score(monkeypatch: pytest.MonkeyPatch) -> None:
    _RecordingCrossEncoder.made = []
    monkeypatch.setattr(cross_encoder_module, "CrossEncoder", _RecordingCrossEncoder)
    _, table, record = fit_cross_encoder_out_of_fold(
        _rows(1, 6), folds=3, budget_s=1.0, max_epochs=1.0, seed=0, device="cpu", log=lambda _: None
    )
    assert record["folds"] == 1 and len(_RecordingCrossEncoder.made) == 1
    assert table.get_column("cross_encoder_oof").null_count() == 6


def test_out_of_fold_file_belongs_to_one_model_version(tmp_path) -> None:  # noqa: ANN001
    table = pl.DataFrame({"query_id": ["1"], "product_id": ["a"], "fold": [0], "cross_encoder_oof": [0.5]})
    write_out_of_fold(table, tmp_path / "oof.parquet", "v1")
    assert read_out_of_fold(tmp_path / "oof.parquet", "v1").equals(table)
    assert read_out_of_fold(tmp_path / "oof.parquet", "v2") is None
    assert read_out_of_fold(tmp_path / "missing.parquet", "v1") is None


def test_fusion_features_never_hold_an_in_sample_cross_encoder_score() -> None:
    served_scores = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}  # what the served model would say
    asked: list[list[str]] = []

    def served(rows: pl.DataFrame) -> np.ndarray:
        asked.append(rows.get_column("offer_id").to_list())
        return np.array([served_scores[o] for o in rows.get_column("offer_id")], dtype=np.float32)

    judged = pl.DataFrame({"category_id": [1, 1, 2, 3], "offer_id": ["a", "b", "c", "d"]})
    oof = pl.DataFrame(
        {"query_id": ["1", "1", "2"], "product_id": ["a", "b", "c"], "cross_encoder_oof": [0.1, None, 0.3]},
        schema_overrides={"cross_encoder_oof": pl.Float32},
    )
    out, counts = leak_free_cross_encoder_scores(judged, oof, trained_on_judgments=True, score=served)
    # a, c: trained on -> their out-of-fold score; b: trained on, no fold score -> null; d: never seen -> served
    assert out.get_column("cross_encoder_score").to_list() == pytest.approx([0.1, None, 0.3, 0.6], nan_ok=True)
    assert counts == {"out_of_fold": 2, "nulled_no_fold": 1, "unseen_by_model": 1}
    assert out.columns == [*judged.columns, "cross_encoder_score"]
    assert asked == [["d"]]  # the served model scores only the pair it never trained on
    nulled, counts = leak_free_cross_encoder_scores(judged, None, trained_on_judgments=True, score=served)
    assert nulled.get_column("cross_encoder_score").null_count() == 4 and counts == {"nulled_in_sample": 4}
    kept, counts = leak_free_cross_encoder_scores(judged, None, trained_on_judgments=False, score=served)
    assert kept.get_column("cross_encoder_score").to_list() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert counts == {"model_trained_elsewhere": 4}
    without, counts = leak_free_cross_encoder_scores(judged, oof, trained_on_judgments=True, score=None)
    assert without.equals(judged) and counts == {"no_cross_encoder": 4}


def test_held_out_calibration_is_cross_fitted_and_recovers_a_logistic_link() -> None:
    rng = np.random.default_rng(0)
    score = rng.normal(0, 2, 6000)
    relevant = (rng.random(score.size) < sigmoid(1.5 * score - 0.5)).astype(float)
    fold = rng.integers(0, 4, score.size)
    (a, b), report = held_out_calibration(score, relevant, fold)
    assert a == pytest.approx(1.5, abs=0.15) and b == pytest.approx(-0.5, abs=0.15)
    assert report["ece"] < 0.03 and report["rows"] == score.size
    assert sum(row["rows"] for row in report["bins"]) == score.size
    # an over-confident link is caught: ECE measured on it is large
    assert expected_calibration_error(sigmoid(6 * score), relevant) > 0.1


def _judged(pages: int, per_page: int, seed: int, *, informative_cross_encoder: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = pages * per_page
    grade = rng.integers(0, 4, n).astype(float)
    noise = rng.normal(0, 1, n)
    return pl.DataFrame(
        {
            "category_id": np.repeat(np.arange(pages), per_page),
            "offer_id": [f"o{i}" for i in range(n)],
            "centroid_cosine": rng.uniform(0, 1, n),
            "prompt_cosine": rng.uniform(0, 1, n),
            "name_match": noise,
            "taxonomy_distance": rng.integers(0, 4, n).astype(float),
            "cross_encoder_score": grade + 0.1 * noise if informative_cross_encoder else None,
            "grade": grade,
        },
        schema_overrides={"cross_encoder_score": pl.Float64},
    )


def test_served_ranker_selects_like_train_and_calibrates_on_held_out_scores(tmp_path) -> None:  # noqa: ANN001
    judged = _judged(24, 15, seed=1, informative_cross_encoder=True)
    served = train_served_ranker(judged, seed=0)
    model, record = served.model, served.record
    selection = record["selection"]
    assert set(selection["held_out"]) == {"cross_encoder_only", "linear_blend", "linear_blend_selection", "lightgbm"}
    assert selection["rule"] == "simplest candidate within one paired standard error of the best held-out score"
    # the cross-encoder alone explains the grades here: the simplest candidate within one SE is chosen
    assert selection["chosen"] == "cross_encoder_only"
    # same selection as select_fusion_ranker on the same frame, and calibration on its held-out scores
    feats = with_page_z(judged).with_columns(
        pl.col("category_id").cast(pl.Utf8).alias("query_id"), pl.col("offer_id").alias("product_id")
    )
    blend = [c for c in feats.columns if c.endswith(PAGE_Z_SUFFIX)]
    same = select_fusion_ranker(
        feats, list(FEATURE_COLUMNS), blend_features=blend, single_signal="cross_encoder_score_page_z", seed=0
    )
    assert same.record == selection
    relevant = (judged.get_column("grade").to_numpy() >= 1.5).astype(float)
    calibration, report = held_out_calibration(same.held_out_scores, relevant, same.fold)
    assert model.calibration == pytest.approx(calibration)
    assert record["calibration"]["ece"] == report["ece"] == model.metrics["held_out_ece"]
    assert load_ranker(model.save(tmp_path / "served")).calibration == pytest.approx(calibration)
    assert served.held_out_scores.get_column("score").to_list() == pytest.approx(same.held_out_scores.tolist())


def test_without_cross_encoder_the_candidates_do_without_it() -> None:
    served = train_served_ranker(_judged(12, 12, seed=2, informative_cross_encoder=False), seed=0)
    assert "cross_encoder_only" not in served.record["selection"]["held_out"]


def test_a_served_blend_explains_each_score_by_signal() -> None:
    blend = LinearBlend.of(["cross_encoder_score_page_z", "taxonomy_distance_page_z"], [2.0, 0.5]).recalibrated(
        (1.0, 0.0), {}
    )
    features = _judged(3, 6, seed=3, informative_cross_encoder=True).drop("grade")
    scored = score_candidates(blend, features)
    contributions = [f"contribution_{s}" for s in FEATURE_COLUMNS] + ["contribution_bias"]
    assert scored.columns == [*features.columns, "score", "confidence", "model_version", *contributions]
    total = scored.select(pl.sum_horizontal(contributions)).to_series().to_numpy()
    assert total == pytest.approx(scored.get_column("score").to_numpy(), abs=1e-4)
    assert (scored.get_column("contribution_centroid_cosine") == 0).all()  # a signal the blend does not weigh
    # closer in the taxonomy scores higher: the distance counts against
    page = with_page_z(features).filter(pl.col("category_id") == 0)
    assert np.corrcoef(page["taxonomy_distance_page_z"], page["taxonomy_distance"])[0, 1] == pytest.approx(-1.0)


def test_judgments_on_one_page_train_lightgbm_and_say_nothing_was_held_out() -> None:
    served = train_served_ranker(_judged(1, 40, seed=4, informative_cross_encoder=True), seed=0)
    assert served.record["selection"]["chosen"] == "lightgbm" and served.record["selection"]["held_out"] == {}
    assert served.record["calibration"]["ece"] is None  # no held-out calibration error to report
    assert 0.0 <= served.record["calibration"]["ece_fitted_on_same_rows"] <= 1.0
    assert served.held_out_scores.height == 0
