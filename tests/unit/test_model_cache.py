"""Model outputs reused across runs: only texts new to the model go through it, results are the model's."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from seestocks_rank.models.encoders import HashingEncoder
from seestocks_rank.store.model_cache import CachedCrossEncoder, CachedTextEncoder

NIGHT_1 = datetime(2026, 11, 1, 2, tzinfo=UTC)
NIGHT_2 = NIGHT_1 + timedelta(days=1)


class CountingCrossEncoder:
    """A stand-in cross-encoder: the score is a function of the two texts; records every pair it scores."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.seen: list[tuple[str, str]] = []

    def score(self, contexts: list[str], titles: list[str]) -> np.ndarray:
        self.seen += list(zip(contexts, titles, strict=True))
        return np.array([len(c) + 0.01 * len(t) for c, t in zip(contexts, titles, strict=True)], dtype=np.float32)


class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__(dim=16)
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return super().encode(texts)


def test_repeated_pairs_are_scored_once_and_scores_line_up_with_the_input() -> None:
    model = CountingCrossEncoder()
    cached = CachedCrossEncoder(model, None, now=NIGHT_1)
    prompts = ["Peppers", "Tool Bags", "Peppers", "Peppers"]
    titles = ["red pepper", "canvas tool bag", "red pepper", "hot sauce"]

    np.testing.assert_allclose(cached.score(prompts, titles), CountingCrossEncoder().score(prompts, titles), rtol=1e-6)
    assert sorted(model.seen) == sorted({("Peppers", "red pepper"), ("Tool Bags", "canvas tool bag"),
                                         ("Peppers", "hot sauce")})  # fmt: skip
    assert (cached.computed, cached.reused, cached.table.height) == (3, 0, 3)
    assert cached.version == "v1"


def test_next_run_scores_only_new_pairs_and_a_retrained_model_rescores() -> None:
    first = CachedCrossEncoder(CountingCrossEncoder(), None, now=NIGHT_1)
    first.score(["Peppers", "Peppers"], ["red pepper", "hot sauce"])

    model = CountingCrossEncoder()
    second = CachedCrossEncoder(model, first.table, now=NIGHT_2)
    scores = second.score(["Peppers", "Peppers"], ["red pepper", "hot sauce (new edition)"])
    assert model.seen == [("Peppers", "hot sauce (new edition)")]  # a reworded title is a new pair
    assert (second.computed, second.reused) == (1, 1)
    assert scores[0] == np.float32(len("Peppers") + 0.01 * len("red pepper"))
    assert second.table.filter(pl.col("title") == "red pepper").get_column("last_used").to_list() == [NIGHT_2]

    retrained = CountingCrossEncoder(version="v2")
    CachedCrossEncoder(retrained, second.table, now=NIGHT_2).score(["Peppers"], ["red pepper"])
    assert retrained.seen == [("Peppers", "red pepper")]


def test_text_vectors_equal_the_encoder_s_and_only_new_texts_are_encoded() -> None:
    texts = ["Peppers", "Tool Bags", "Peppers"]
    first = CachedTextEncoder(CountingEncoder(), None, now=NIGHT_1)
    np.testing.assert_array_equal(first.encode(texts), HashingEncoder(dim=16).encode(texts))
    assert first.encoder.seen == ["Peppers", "Tool Bags"]
    assert (first.dim, first.model_version) == (16, HashingEncoder(dim=16).model_version)

    encoder = CountingEncoder()
    second = CachedTextEncoder(encoder, first.table, now=NIGHT_2)
    vectors = second.encode(["Tool Bags", "Hot Sauce"])
    assert encoder.seen == ["Hot Sauce"]
    np.testing.assert_array_equal(vectors, HashingEncoder(dim=16).encode(["Tool Bags", "Hot Sauce"]))
    assert second.encode([]).shape == (0, 16)


def test_rows_unused_for_the_retention_period_are_dropped() -> None:
    cached = CachedCrossEncoder(CountingCrossEncoder(), None, now=NIGHT_1)
    cached.score(["Peppers"], ["red pepper"])
    later = CachedCrossEncoder(CountingCrossEncoder(), cached.table, now=NIGHT_1 + timedelta(days=10))
    later.score(["Peppers"], ["green pepper"])
    assert later.kept(keep_days=7).get_column("title").to_list() == ["green pepper"]


def test_a_table_with_another_schema_starts_empty() -> None:
    stale = pl.DataFrame({"prompt": ["Peppers"], "title": ["red pepper"], "score": [0.5]})
    assert CachedCrossEncoder(CountingCrossEncoder(), stale).table.height == 0
    other_dim = CachedTextEncoder(CountingEncoder(), None, now=NIGHT_1)
    other_dim.encode(["Peppers"])
    assert CachedTextEncoder(HashingEncoder(dim=32), other_dim.table).table.height == 0
