"""Numeric helpers shared by the stages: unit rows, row-wise dots, Array columns, feature matrices and the
robust z-score."""

from __future__ import annotations

import numpy as np
import polars as pl


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit-length rows (an all-zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def rowwise_dot(
    a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray, chunk: int = 65_536
) -> np.ndarray:
    """``a[a_rows[i]] . b[b_rows[i]]`` for every i, in bounded-memory chunks."""
    out = np.empty(len(a_rows), dtype=np.float32)
    for start in range(0, len(a_rows), chunk):  # bounded memory per chunk of pairs
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("ij,ij->i", a[a_rows[sl]], b[b_rows[sl]])
    return out


def vectors(df: pl.DataFrame, column: str = "embedding") -> np.ndarray:
    """A float32 ``[n, dim]`` matrix from an Array column."""
    if df.height == 0:
        return np.zeros((0, df.schema[column].size), dtype=np.float32)
    return np.ascontiguousarray(df.get_column(column).to_numpy(), dtype=np.float32)


def array_series(name: str, matrix: np.ndarray) -> pl.Series:
    """An ``Array(Float32, dim)`` series from a ``[n, dim]`` matrix."""
    matrix = np.asarray(matrix, dtype=np.float32)
    return pl.Series(name, matrix, dtype=pl.Array(pl.Float32, matrix.shape[1]))


MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per median absolute deviation


def median_mad(values: np.ndarray) -> tuple[float, float]:
    """The median of ``values`` and their median absolute deviation from it."""
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median)))


def robust_z(values: pl.Expr, median: pl.Expr, mad: pl.Expr, floor: float) -> pl.Expr:
    """(value - median) / (1.4826 * MAD), the MAD floored at ``floor`` so tight groups don't explode."""
    return (values - median) / (pl.max_horizontal(mad, pl.lit(floor)) * MAD_TO_SIGMA)


def feature_matrix(df: pl.DataFrame, features: list[str], fill: float = np.nan) -> np.ndarray:
    """``[rows, features]`` float64 matrix of ``df``'s ``features``; nulls, NaNs and absent columns become
    ``fill`` (NaN: missing, as LightGBM reads it; 0.0: no contribution to a linear blend)."""
    columns = [pl.col(f).cast(pl.Float64) if f in df.columns else pl.lit(None, pl.Float64).alias(f) for f in features]
    return df.select(c.fill_null(fill).fill_nan(fill) for c in columns).to_numpy()
