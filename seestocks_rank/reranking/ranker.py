"""The ranker the nightly serves: chosen among the cross-encoder alone, linear blends and LightGBM by the
same cross-validated one-standard-error rule as ``seestocks-rank train`` (``select_fusion_ranker``), with
its confidence calibrated on held-out scores only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from seestocks_rank.evaluation.selection import FusionSelection, LinearBlend, select_fusion_ranker
from seestocks_rank.reranking.calibration import expected_calibration_error, held_out_calibration, reliability_bins
from seestocks_rank.reranking.fusion import FusionModel, train_fusion
from seestocks_rank.reranking.signals import FEATURE_COLUMNS

# The signals a linear blend weighs, as within-page z-scores, each oriented so that higher means more
# relevant (the blends' weights are non-negative): distances and price outlyingness count against.
PAGE_Z_SIGNALS: dict[str, float] = {
    "cross_encoder_score": 1.0,
    "centroid_cosine": 1.0,
    "prompt_cosine": 1.0,
    "name_match": 1.0,
    "visual_similarity": 1.0,
    "taxonomy_distance": -1.0,
    "predicted_distance": -1.0,
    "price_abs_z": -1.0,
}
PAGE_Z_SUFFIX = "_page_z"
CROSS_ENCODER_PAGE_Z = f"cross_encoder_score{PAGE_Z_SUFFIX}"

Ranker = FusionModel | LinearBlend


@dataclass
class ServedRanker:
    """``train_served_ranker``'s result: the ranker, its record (selection and calibration report), and each
    judged pair's held-out score (``category_id, offer_id, grade, score``: by a candidate fit without its
    page), which the relevance report evaluates."""

    model: Ranker
    record: dict[str, object]
    held_out_scores: pl.DataFrame


def with_page_z(df: pl.DataFrame, group: str = "category_id") -> pl.DataFrame:
    """``df`` with ``<signal>_page_z`` for each ``PAGE_Z_SIGNALS`` column it has: the oriented signal's
    z-score among the rows of its page (null where the signal is; 0 on a page where it does not vary)."""
    columns = []
    for signal, sign in PAGE_Z_SIGNALS.items():
        if signal not in df.columns:
            continue
        x = pl.col(signal).cast(pl.Float64) * sign
        spread = x.std().over(group).fill_null(0.0).clip(1e-6)
        columns.append(((x - x.mean().over(group)) / spread).fill_nan(0.0).alias(f"{signal}{PAGE_Z_SUFFIX}"))
    return df.with_columns(columns)


def train_served_ranker(
    judged: pl.DataFrame,
    *,
    relevant_min: float | None = None,
    folds: int = 4,
    seed: int = 0,
) -> ServedRanker:
    """Choose and fit the served ranker on judged pairs (``category_id, offer_id, grade`` and the
    signals), then calibrate its confidence on the chosen candidate's held-out scores
    (``held_out_calibration``: P(grade >= ``relevant_min``), default the grade range's midpoint, the
    threshold the rules' ``min_confidence`` was set against). Returns the ranker and a record: the
    selection (every candidate's held-out figures) and the calibration report (held-out ECE,
    reliability bins), and the held-out scores."""
    if judged.height == 0:
        raise ValueError("no judged pairs to train the served ranker on")
    if judged.get_column("category_id").n_unique() < 2:
        return _single_page_ranker(judged, relevant_min, seed)
    feats = with_page_z(judged).with_columns(
        pl.col("category_id").cast(pl.Utf8).alias("query_id"), pl.col("offer_id").cast(pl.Utf8).alias("product_id")
    )
    has_cross_encoder = feats.get_column("cross_encoder_score").null_count() < feats.height
    blend = [f"{s}{PAGE_Z_SUFFIX}" for s in PAGE_Z_SIGNALS if f"{s}{PAGE_Z_SUFFIX}" in feats.columns]
    if not has_cross_encoder:
        blend = [f for f in blend if f != CROSS_ENCODER_PAGE_Z]
    selection: FusionSelection = select_fusion_ranker(
        feats,
        list(FEATURE_COLUMNS),
        blend_features=blend,
        single_signal=CROSS_ENCODER_PAGE_Z if has_cross_encoder else "",
        folds=folds,
        seed=seed,
    )
    grades = feats.get_column("grade").cast(pl.Float64).to_numpy()
    threshold = relevant_min if relevant_min is not None else (grades.min() + grades.max()) / 2
    calibration, report = held_out_calibration(
        selection.held_out_scores, (grades >= threshold).astype(np.float64), selection.fold
    )
    figures = {"held_out_ece": report["ece"], "relevant_min": float(threshold)}
    held_out = feats.select("category_id", "offer_id", "grade", pl.Series("score", selection.held_out_scores))
    return ServedRanker(
        selection.model.recalibrated(calibration, figures),
        {"selection": selection.record, "calibration": report},
        held_out,
    )


def _single_page_ranker(judged: pl.DataFrame, relevant_min: float | None, seed: int) -> ServedRanker:
    """Judgments on one page leave nothing to hold out: LightGBM trained on it, its confidence calibrated
    on the same rows, and the record says so (no held-out figures)."""
    model = train_fusion(judged, relevant_min=relevant_min, seed=seed)
    grades = judged.get_column("grade").cast(pl.Float64).to_numpy()
    threshold = relevant_min if relevant_min is not None else (grades.min() + grades.max()) / 2
    confidence = model.predict(judged).get_column("confidence").to_numpy()
    relevant = (grades >= threshold).astype(np.float64)
    report = {
        "ece": None,
        "ece_fitted_on_same_rows": expected_calibration_error(confidence, relevant),
        "rows": judged.height,
        "relevant_share": float(relevant.mean()),
        "bins": reliability_bins(confidence, relevant),
    }
    rule = "judgments on one page: nothing to hold out; LightGBM trained on it, calibrated on the same rows"
    selection = {"chosen": "lightgbm", "rule": rule, "held_out": {}}
    empty = pl.DataFrame(
        schema={"category_id": pl.Int64, "offer_id": pl.Utf8, "grade": pl.Float64, "score": pl.Float64}
    )
    return ServedRanker(model, {"selection": selection, "calibration": report}, empty)


def score_candidates(model: Ranker, features: pl.DataFrame) -> pl.DataFrame:
    """The ``fused_scores`` stage: each candidate's ``score``, calibrated ``confidence``, ``model_version``
    and every signal's ``contribution_<signal>`` to the score (TreeSHAP for LightGBM, weight x page
    z-score for a blend; signals a blend does not weigh contribute 0), plus ``contribution_bias``."""
    reads_page_z = any(f.endswith(PAGE_Z_SUFFIX) for f in model.features)  # a blend; LightGBM reads the signals
    inputs = with_page_z(features) if reads_page_z else features
    contributions = model.contributions(inputs).rename(
        lambda c: c.removesuffix(PAGE_Z_SUFFIX) if c.endswith(PAGE_Z_SUFFIX) else c
    )
    missing = [f"contribution_{s}" for s in FEATURE_COLUMNS if f"contribution_{s}" not in contributions.columns]
    contributions = contributions.with_columns(pl.lit(0.0, pl.Float32).alias(c) for c in missing).select(
        *(f"contribution_{s}" for s in FEATURE_COLUMNS), "contribution_bias"
    )
    scored = model.predict(inputs).select(*features.columns, "score", "confidence", "model_version")
    return pl.concat([scored, contributions], how="horizontal")
