"""Confidence calibration on held-out scores: the business rules cut on ``confidence`` (P(relevant)), so it
must be fitted, and judged, on scores of pairs the ranker did not train on."""

from __future__ import annotations

import hashlib
import io

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow, no clipping plateau)."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def fit_calibration(score: np.ndarray, relevant: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """1-D logistic regression (Newton's method, a light ridge) of relevant ~ score."""
    x = np.column_stack([score, np.ones_like(score)])
    w = np.zeros(2)
    for _ in range(iters):
        p = sigmoid(x @ w)
        grad = x.T @ (p - relevant) + 1e-3 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def recalibrated_version(version: str, calibration: tuple[float, float]) -> str:
    """The version of model ``version`` once its confidence calibration is ``calibration``."""
    return hashlib.sha1(f"{version}:{list(calibration)}".encode()).hexdigest()[:12]


def held_out_calibration(
    scores: np.ndarray, relevant: np.ndarray, fold: np.ndarray, *, bins: int = 10
) -> tuple[tuple[float, float], dict[str, object]]:
    """Fit ``confidence = sigmoid(a * score + b)`` on held-out ``scores`` (each row scored by a ranker that
    did not train on its fold) and judge it without reusing a row: each fold's confidences come from a
    calibration fitted on the other folds (cross-fitting). Returns ``(a, b)`` fitted on every row and a
    report: expected calibration error (``ece``, bin-weighted |mean confidence - relevant share| over
    ``bins`` equal-width confidence bins), the in-sample ``ece_fitted_on_same_rows`` for comparison, and
    the reliability ``bins`` (``lo, hi, rows, mean_confidence, relevant_share``)."""
    scores, relevant, fold = np.asarray(scores, float), np.asarray(relevant, float), np.asarray(fold)
    calibration = fit_calibration(scores, relevant)
    crossed = np.empty_like(scores)
    for f in np.unique(fold):
        rows = fold == f
        a, b = fit_calibration(scores[~rows], relevant[~rows]) if (~rows).any() else calibration
        crossed[rows] = sigmoid(a * scores[rows] + b)
    fitted = sigmoid(calibration[0] * scores + calibration[1])
    table = reliability_bins(crossed, relevant, bins)
    report = {
        "ece": expected_calibration_error(crossed, relevant, bins),
        "ece_fitted_on_same_rows": expected_calibration_error(fitted, relevant, bins),
        "rows": int(scores.size),
        "relevant_share": float(relevant.mean()) if relevant.size else 0.0,
        "bins": table,
    }
    return calibration, report


def reliability_bins(confidence: np.ndarray, relevant: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width confidence bins with rows: their range, row count, mean confidence and relevant share."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    out = []
    for i in range(bins):
        rows = which == i
        if rows.any():
            out.append(
                {
                    "lo": float(edges[i]),
                    "hi": float(edges[i + 1]),
                    "rows": int(rows.sum()),
                    "mean_confidence": round(float(confidence[rows].mean()), 4),
                    "relevant_share": round(float(relevant[rows].mean()), 4),
                }
            )
    return out


def expected_calibration_error(confidence: np.ndarray, relevant: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between confidence and the relevant share over equal-width bins."""
    n = max(len(confidence), 1)
    gaps = [
        b["rows"] * abs(b["mean_confidence"] - b["relevant_share"])
        for b in reliability_bins(confidence, relevant, bins)
    ]
    return round(float(sum(gaps)) / n, 4)


def reliability_plot(report: dict[str, object]) -> bytes:
    """PNG of a ``held_out_calibration`` report: relevant share against mean confidence per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = report["bins"]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot(
        [b["mean_confidence"] for b in table],
        [b["relevant_share"] for b in table],
        marker="o",
        label=f"held-out (ECE {report['ece']:.3f})"
        if report["ece"] is not None
        else f"same rows as fitted (ECE {report['ece_fitted_on_same_rows']:.3f})",
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("share judged relevant")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
