"""Stage 2b, fusion: a LightGBM lambdarank model trained on human relevance judgments turns the
signals into one score per (page, product), plus a calibrated confidence for the business rules.

Grades on any scale are mapped to integer relevance levels (dense rank of the distinct grades), so
0-3 judgments and Home Depot's 1.00-3.00 averages both train without code changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from seestocks_rank.numeric import feature_matrix
from seestocks_rank.reranking.calibration import fit_calibration, recalibrated_version, sigmoid
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.splits import split_groups

MODEL_FILE = "model.txt"


META_FILE = "model.json"


@dataclass
class FusionModel:
    booster: lgb.Booster
    features: list[str]
    version: str
    calibration: tuple[float, float]  # confidence = sigmoid(a * score + b)
    metrics: dict[str, float] = field(default_factory=dict)

    def predict(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` with ``score`` (ranking score) and ``confidence`` (P(relevant), 0-1) appended."""
        x = feature_matrix(df, self.features)
        score = self.booster.predict(x, num_threads=0) if len(x) else np.zeros(0)
        a, b = self.calibration
        return df.with_columns(
            pl.Series("score", score, dtype=pl.Float64),
            pl.Series("confidence", sigmoid(a * score + b), dtype=pl.Float64),
            pl.lit(self.version).alias("model_version"),
        )

    def contributions(self, df: pl.DataFrame) -> pl.DataFrame:
        """Each feature's share of each row's ``score`` (TreeSHAP, ``pred_contrib``): one
        ``contribution_<feature>`` column per feature and ``contribution_bias``; they add up to ``score``."""
        x = feature_matrix(df, self.features)
        values = (
            self.booster.predict(x, pred_contrib=True, num_threads=0)
            if len(x)
            else np.zeros((0, len(self.features) + 1))
        )
        names = [f"contribution_{f}" for f in self.features] + ["contribution_bias"]
        return pl.DataFrame(np.asarray(values, dtype=np.float32), schema=dict.fromkeys(names, pl.Float32))

    def importances(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        return {f: round(float(g) / total, 4) for f, g in zip(self.features, gain, strict=True)}

    def recalibrated(self, calibration: tuple[float, float], metrics: dict[str, float]) -> FusionModel:
        """This model with another confidence calibration (a new version) and ``metrics`` added."""
        version = recalibrated_version(self.version, calibration)
        return FusionModel(self.booster, self.features, version, tuple(calibration), {**self.metrics, **metrics})

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        meta = {
            "version": self.version,
            "features": self.features,
            "calibration": list(self.calibration),
            "metrics": self.metrics,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> FusionModel:
        meta_path = Path(folder) / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"no fusion model in {folder} ({META_FILE} missing)")
        meta = json.loads(meta_path.read_text())
        booster = lgb.Booster(model_file=str(Path(folder) / MODEL_FILE))
        return cls(booster, meta["features"], meta["version"], tuple(meta["calibration"]), meta["metrics"])


def relevance_levels(grades: pl.Series) -> np.ndarray:
    """Integer levels 0..L-1 from the distinct grade values (more than 31 distinct: deciles)."""
    values = grades.cast(pl.Float64).to_numpy()
    distinct = np.unique(values)
    if len(distinct) > 31:
        distinct = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
    return np.clip(np.searchsorted(distinct, values, side="right") - 1, 0, None).astype(np.int32)


def train_fusion(
    judged: pl.DataFrame,
    *,
    group_column: str = "category_id",
    features: list[str] | None = None,
    relevant_min: float | None = None,
    valid_share: float = 0.2,
    seed: int = 0,
    num_boost_round: int = 400,
) -> FusionModel:
    """Train lambdarank on ``judged`` (features + ``grade`` + ``group_column``), early-stopped on a
    seeded validation share of the groups, then calibrate confidence on all judged rows.

    ``relevant_min``: grades at or above it count as relevant for the confidence calibration
    (default: the midpoint of the grade range).
    """
    if judged.height == 0:
        raise ValueError("no judged pairs to train the fusion model on")
    features = list(features or FEATURE_COLUMNS)
    judged = judged.sort(group_column, "offer_id" if "offer_id" in judged.columns else group_column)
    levels = relevance_levels(judged.get_column("grade"))
    is_valid = split_groups(judged.get_column(group_column), valid_share, seed)
    x = feature_matrix(judged, features)

    def dataset(mask: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        group_sizes = judged.filter(pl.Series(mask)).group_by(group_column, maintain_order=True).len()
        return lgb.Dataset(
            x[mask],
            levels[mask],
            group=group_sizes.get_column("len").to_numpy(),
            feature_name=features,
            reference=reference,
            free_raw_data=False,
        )

    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 10,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "num_threads": 1 if judged.height < 50_000 else 2,  # small sets: threads only contend
        "verbosity": -1,
    }
    train_set = dataset(~is_valid)
    valid_sets, callbacks = [], []
    if is_valid.any():
        valid_sets = [dataset(is_valid, train_set)]
        callbacks = [lgb.early_stopping(40, verbose=False)]
    booster = lgb.train(params, train_set, num_boost_round, valid_sets=valid_sets, callbacks=callbacks)
    groups = judged.get_column(group_column)
    metrics: dict[str, float] = {
        "judged_pairs": float(judged.height),
        "train_groups": float(groups.filter(pl.Series(~is_valid)).n_unique()),
        "valid_groups": float(groups.filter(pl.Series(is_valid)).n_unique()),
    }
    if valid_sets:
        metrics["valid_ndcg@10"] = float(booster.best_score["valid_0"]["ndcg@10"])
        metrics["best_iteration"] = float(booster.best_iteration)
    grades = judged.get_column("grade").cast(pl.Float64).to_numpy()
    threshold = relevant_min if relevant_min is not None else (grades.min() + grades.max()) / 2
    score = booster.predict(x, num_iteration=booster.best_iteration or None)
    calibration = fit_calibration(score, (grades >= threshold).astype(np.float64))
    model_str = booster.model_to_string(num_iteration=booster.best_iteration or None)
    booster = lgb.Booster(model_str=model_str)
    version = hashlib.sha1((model_str + json.dumps(calibration)).encode()).hexdigest()[:12]
    return FusionModel(booster, features, version, calibration, metrics)
