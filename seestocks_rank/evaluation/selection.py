"""Fusion-ranker candidates and their cross-validated selection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.evaluation.metrics import (
    SELECTION_SCORE,
    grade_thresholds,
    per_query_metrics,
    ranked,
    selection_contributions,
    selection_score,
    summarize_metrics,
)
from seestocks_rank.evaluation.statistics import choose_within_one_standard_error
from seestocks_rank.numeric import feature_matrix
from seestocks_rank.reranking.calibration import recalibrated_version, sigmoid
from seestocks_rank.reranking.fusion import FusionModel, train_fusion
from seestocks_rank.splits import query_folds


@dataclass
class LinearBlend:
    """A weighted sum of within-query z-scored signals, weights fitted by coordinate ascent.

    With only a couple of thousand training queries a tree ensemble over-fits where a few weights on
    well-scaled signals do not; ``train_fusion_ranker`` keeps whichever candidate validates better.
    """

    features: list[str]
    weights: list[float]
    version: str
    metrics: dict[str, float]
    calibration: tuple[float, float] | None = None  # confidence = sigmoid(a * score + b), when calibrated

    OBJECTIVES = ("ndcg", "selection")

    def predict(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` with ``score``, ``model_version`` and, when calibrated, ``confidence`` appended."""
        score = feature_matrix(df, self.features, fill=0.0) @ np.asarray(self.weights)
        out = df.with_columns(pl.Series("score", score, dtype=pl.Float64), pl.lit(self.version).alias("model_version"))
        if self.calibration is None:
            return out
        a, b = self.calibration
        return out.with_columns(pl.Series("confidence", sigmoid(a * score + b), dtype=pl.Float64))

    def contributions(self, df: pl.DataFrame) -> pl.DataFrame:
        """Each feature's share of each row's ``score`` (weight x value: exact for a sum), as
        ``contribution_<feature>`` columns and a zero ``contribution_bias``."""
        x = feature_matrix(df, self.features, fill=0.0) * np.asarray(self.weights)
        names = [f"contribution_{f}" for f in self.features] + ["contribution_bias"]
        values = np.column_stack([x, np.zeros(len(x))]) if len(x) else np.zeros((0, len(names)))
        return pl.DataFrame(values.astype(np.float32), schema=dict.fromkeys(names, pl.Float32))

    def importances(self) -> dict[str, float]:
        """Each feature's share of the absolute weights."""
        total = sum(abs(w) for w in self.weights) or 1.0
        return {f: round(abs(w) / total, 4) for f, w in zip(self.features, self.weights, strict=True)}

    def recalibrated(self, calibration: tuple[float, float], metrics: dict[str, float]) -> LinearBlend:
        """This blend with a confidence calibration (a new version) and ``metrics`` added."""
        version = recalibrated_version(self.version, calibration)
        return LinearBlend(self.features, self.weights, version, {**self.metrics, **metrics}, tuple(calibration))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": "linear_blend",
            "version": self.version,
            "features": self.features,
            "weights": self.weights,
            "metrics": self.metrics,
            "calibration": list(self.calibration) if self.calibration is not None else None,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def of(cls, features: list[str], weights: list[float], metrics: dict[str, float] | None = None) -> LinearBlend:
        """A blend with given weights (e.g. one signal alone: ``LinearBlend.of(["cross_encoder_z"], [1.0])``)."""
        weights = [float(w) for w in weights]
        version = hashlib.sha1(json.dumps([list(features), weights]).encode()).hexdigest()[:12]
        return cls(list(features), weights, version, dict(metrics or {}))

    @classmethod
    def fit(
        cls,
        feats: pl.DataFrame,
        features: list[str],
        *,
        objective: str = "ndcg",
        relevant_min: float | None = None,
        irrelevant_max: float | None = None,
        grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        rounds: int = 3,
    ) -> LinearBlend:
        """Coordinate ascent from weight 1 on the first feature: each round tries every grid value for
        every weight in turn and keeps strict improvements only (so ties keep the earlier, simpler
        weights). ``objective``: ``"ndcg"`` (the default: NDCG@10 over all queries) or ``"selection"``
        (``selection_score``: NDCG@10 on all and deep queries minus bad_pages@10 on deep ones, with
        the grade thresholds of ``grade_thresholds``)."""
        if objective not in cls.OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {cls.OBJECTIVES}")
        relevant_min, irrelevant_max = grade_thresholds(feats.get_column("grade"), relevant_min, irrelevant_max)
        x = feature_matrix(feats, features, fill=0.0)

        def metrics(weights: np.ndarray) -> dict[str, dict[str, float]]:
            return _ranking_metrics(feats, x @ weights, relevant_min, irrelevant_max)

        def target(weights: np.ndarray) -> float:
            m = metrics(weights)
            return m["all"]["ndcg@10"] if objective == "ndcg" else selection_score(m)

        weights = np.zeros(len(features))
        weights[0] = 1.0
        best = target(weights)
        for _ in range(rounds):
            improved = False
            for i in range(len(features)):
                for value in grid:
                    trial = weights.copy()
                    trial[i] = value
                    if not trial.any():
                        continue
                    score = target(trial)
                    if score > best + 1e-6:
                        best, weights, improved = score, trial, True
            if not improved:
                break
        final = metrics(weights)
        return cls.of(
            features,
            weights.tolist(),
            {"train_ndcg@10": final["all"]["ndcg@10"], "train_selection_score": round(selection_score(final), 4)},
        )


def _per_query_metrics(
    feats: pl.DataFrame, scores: np.ndarray, relevant_min: float, irrelevant_max: float
) -> pl.DataFrame:
    floor = float(feats.get_column("grade").min())
    return per_query_metrics(
        ranked(feats, scores), relevant_min=relevant_min, irrelevant_max=irrelevant_max, grade_floor=floor
    )


def _ranking_metrics(
    feats: pl.DataFrame, scores: np.ndarray, relevant_min: float, irrelevant_max: float
) -> dict[str, dict[str, float]]:
    return summarize_metrics(_per_query_metrics(feats, scores, relevant_min, irrelevant_max))


def load_ranker(folder: Path) -> FusionModel | LinearBlend:
    """A fusion model folder: LightGBM lambdarank or a linear blend."""
    meta = json.loads((Path(folder) / "model.json").read_text())
    if meta.get("kind") == "linear_blend":
        calibration = tuple(meta["calibration"]) if meta.get("calibration") else None
        return LinearBlend(meta["features"], meta["weights"], meta["version"], meta["metrics"], calibration)
    return FusionModel.load(folder)


@dataclass
class FusionSelection:
    """``select_fusion_ranker``'s result: the chosen candidate refit on every query, the selection record,
    and the chosen candidate's held-out score of each row with the fold that held it out."""

    model: FusionModel | LinearBlend
    record: dict[str, object]
    held_out_scores: np.ndarray
    fold: np.ndarray


def train_fusion_ranker(
    feats: pl.DataFrame,
    features: list[str],
    *,
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    folds: int = 4,
    seed: int = 0,
) -> tuple[FusionModel | LinearBlend, dict[str, object]]:
    """``select_fusion_ranker``'s model and record (``train``'s fusion models)."""
    selection = select_fusion_ranker(
        feats, features, relevant_min=relevant_min, irrelevant_max=irrelevant_max, folds=folds, seed=seed
    )
    return selection.model, selection.record


def select_fusion_ranker(
    feats: pl.DataFrame,
    features: list[str],
    *,
    blend_features: list[str] | None = None,
    single_signal: str = "cross_encoder_z",
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    folds: int = 4,
    seed: int = 0,
) -> FusionSelection:
    """Choose the fusion ranker by cross-validation over the queries, then refit it on all of them.

    ``feats``: ``query_id, product_id, grade`` and the features. Candidates, simplest first:
    ``cross_encoder_only`` (weight 1 on ``single_signal``, when it is a feature, so the fusion cannot
    validate worse than the cross-encoder alone), ``linear_blend`` (``LinearBlend.fit`` on NDCG@10),
    ``linear_blend_selection`` (``LinearBlend.fit`` on the selection score), both over
    ``blend_features`` (default: the ``features`` ending in ``_z``, within-query z-scores oriented so
    that higher is better), and ``lightgbm`` (lambdarank on ``features``). Each is fitted on
    ``folds - 1`` seeded folds of the queries and scores the remaining one, in turn, so every query is
    held out once, and gets the ``selection_score`` (SELECTION_SCORE, at ``ranking_metrics``' 4
    decimals) of its held-out scores.

    The choice follows the one-standard-error rule: the simplest candidate whose score is within one
    paired standard error (over the held-out queries, ``paired_standard_error``) of the best one's.
    With a few hundred judged queries, a bad page more or less moves the score by as much as the
    gaps between candidates, and a more complex model that leads by less than its own noise did not
    carry its lead to unseen queries here (bench/results/relevance.md). Grade thresholds default as
    in ``grade_thresholds``."""
    relevant_min, irrelevant_max = grade_thresholds(feats.get_column("grade"), relevant_min, irrelevant_max)
    n_queries = feats.get_column("query_id").n_unique()
    if n_queries < 2:
        raise ValueError("the fusion ranker needs judgments on at least 2 queries")
    folds = max(2, min(folds, n_queries))
    blend_features = blend_features or [f for f in features if f.endswith("_z")] or features
    candidates: dict[str, Callable[[pl.DataFrame], FusionModel | LinearBlend]] = {}
    if single_signal in features or single_signal in blend_features:
        candidates["cross_encoder_only"] = lambda df: LinearBlend.of([single_signal], [1.0])
    candidates["linear_blend"] = lambda df: LinearBlend.fit(
        df, blend_features, relevant_min=relevant_min, irrelevant_max=irrelevant_max
    )
    candidates["linear_blend_selection"] = lambda df: LinearBlend.fit(
        df, blend_features, objective="selection", relevant_min=relevant_min, irrelevant_max=irrelevant_max
    )
    candidates["lightgbm"] = lambda df: train_fusion(df, group_column="query_id", features=features, seed=seed)

    fold = query_folds(feats.get_column("query_id"), folds, seed + 1)
    held_out = {name: np.zeros(feats.height) for name in candidates}
    for f in range(folds):
        mask = fold == f
        fit, hold = feats.filter(pl.Series(~mask)), feats.filter(pl.Series(mask))
        for name, make in candidates.items():
            held_out[name][mask] = make(fit).predict(hold).get_column("score").to_numpy()
    per_query = {name: _per_query_metrics(feats, s, relevant_min, irrelevant_max) for name, s in held_out.items()}
    metrics = {name: summarize_metrics(pq) for name, pq in per_query.items()}
    scores = {name: round(selection_score(m), 4) for name, m in metrics.items()}
    contributions = {name: selection_contributions(pq) for name, pq in per_query.items()}
    chosen, best, standard_error = choose_within_one_standard_error(scores, contributions)
    deep = next(iter(metrics.values()))["deep"]
    selection = {
        "chosen": chosen,
        "best_held_out": best,
        "rule": "simplest candidate within one paired standard error of the best held-out score",
        "selection_score": SELECTION_SCORE,
        "relevant_min": relevant_min,
        "irrelevant_max": irrelevant_max,
        "folds": folds,
        "held_out_queries": n_queries,
        "held_out_deep_queries": deep["queries"],
        "held_out_deep_queries_with_bad_and_relevant": deep["queries_with_bad_and_relevant"],
        "held_out": {
            name: {
                "ndcg@10": m["all"]["ndcg@10"],
                "ndcg@10.deep": m["deep"]["ndcg@10"],
                "bad_pages@10.deep": m["deep"]["bad_pages@10"],
                "score": scores[name],
                "standard_error_vs_best": standard_error[name],
            }
            for name, m in metrics.items()
        },
    }
    return FusionSelection(candidates[chosen](feats), selection, held_out[chosen], fold)
