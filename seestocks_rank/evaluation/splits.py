"""Seeded, stable splits and folds for training and evaluation."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    pass


def split_groups(groups: pl.Series, valid_share: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose group falls in a seeded validation share of the groups."""
    distinct = np.array(sorted(groups.unique().cast(pl.Utf8).to_list()))
    rng = np.random.default_rng(seed)
    n_valid = min(max(1, round(len(distinct) * valid_share)), len(distinct) - 1) if len(distinct) > 1 else 0
    chosen = set(rng.choice(distinct, size=n_valid, replace=False).tolist())
    return groups.cast(pl.Utf8).is_in(list(chosen)).to_numpy()


def query_folds(query_ids: pl.Series, folds: int, seed: int) -> np.ndarray:
    """Fold number (0 .. folds-1) of each row: the sorted distinct queries, seeded-shuffled, dealt in turn."""
    distinct = np.array(sorted(query_ids.unique().cast(pl.Utf8).to_list()))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = dict(zip(distinct[order].tolist(), (np.arange(len(distinct)) % folds).tolist(), strict=True))
    return query_ids.cast(pl.Utf8).replace_strict(fold_of, return_dtype=pl.Int64).to_numpy()


def hash_split(keys: pl.Series, buckets: int = 10) -> np.ndarray:
    """A stable bucket ``0..buckets-1`` per key (md5 of its text), for train/valid/test splits."""
    return np.array([int(hashlib.md5(str(k).encode()).hexdigest(), 16) % buckets for k in keys.to_list()])


def seeded_split(n: int, seed: int, test_share: float = 0.2) -> np.ndarray:
    """Boolean test mask: a seeded ``test_share`` of the rows."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(n)[: int(round(test_share * n))]] = True
    return test
