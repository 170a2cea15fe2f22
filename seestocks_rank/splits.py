"""Splits and folds, all in one place: by a stable hash of a key (fixed benchmark splits that never move
when data is added) or seeded (training's validation groups and cross-validation folds).

Groups (pages, queries) are split as wholes, so no group has rows on both sides.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl


def hash_split(keys: pl.Series, buckets: int = 10) -> np.ndarray:
    """A stable bucket ``0..buckets-1`` per key: ``md5(str(key)) % buckets``."""
    return np.array([int(hashlib.md5(str(k).encode()).hexdigest(), 16) % buckets for k in keys.to_list()])


def _distinct(groups: pl.Series) -> np.ndarray:
    """The sorted distinct group keys as text (a seeded draw over them does not depend on row order)."""
    return np.array(sorted(groups.unique().cast(pl.Utf8).to_list()))


def split_groups(groups: pl.Series, valid_share: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose group falls in a seeded validation share of the groups (at least one
    group on each side when there are two or more)."""
    distinct = _distinct(groups)
    rng = np.random.default_rng(seed)
    n_valid = min(max(1, round(len(distinct) * valid_share)), len(distinct) - 1) if len(distinct) > 1 else 0
    chosen = set(rng.choice(distinct, size=n_valid, replace=False).tolist())
    return groups.cast(pl.Utf8).is_in(list(chosen)).to_numpy()


def query_folds(query_ids: pl.Series, folds: int, seed: int) -> np.ndarray:
    """Fold number (0 .. folds-1) of each row: the distinct groups, seeded-shuffled, dealt in turn."""
    distinct = _distinct(query_ids)
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = dict(zip(distinct[order].tolist(), (np.arange(len(distinct)) % folds).tolist(), strict=True))
    return query_ids.cast(pl.Utf8).replace_strict(fold_of, return_dtype=pl.Int64).to_numpy()


def seeded_split(n: int, seed: int, test_share: float = 0.2) -> np.ndarray:
    """Boolean test mask over ``n`` independent rows: a seeded ``test_share`` of them."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(n)[: int(round(test_share * n))]] = True
    return test
