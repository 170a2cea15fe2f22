"""The registry row of a trained model: one row per model asset, saying which version a run serves and
where it lives, so the stages that use a model read one table shape whatever the model."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

REGISTRY_SCHEMA = {
    "version": pl.String,
    "status": pl.String,  # trained, reused, configured (used as given), skipped (not used), absent (none yet)
    "path": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
    "metrics": pl.String,  # JSON: the training's figures
    "details": pl.String,  # JSON: what else describes the model (architecture, features, importances)
}


def registry_row(
    status: str,
    *,
    version: str | None = None,
    path: str | None = None,
    trained_at: datetime | None = None,
    metrics: dict | None = None,
    details: dict | None = None,
) -> pl.DataFrame:
    """One row in :data:`REGISTRY_SCHEMA`."""
    values = {
        "version": version,
        "status": status,
        "path": path,
        "trained_at": trained_at,
        "metrics": json.dumps(metrics or {}, default=float),
        "details": json.dumps(details or {}, default=float),
    }
    return pl.DataFrame({k: [v] for k, v in values.items()}, schema=REGISTRY_SCHEMA)
