"""Tests for seestocks_rank.embeddings and the memory-mapped embedding store."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seestocks_rank.numeric import array_series, vectors
from seestocks_rank.retrieval.embeddings import embed_products
from seestocks_rank.store.embedding_store import (
    CHUNKS,
    MANIFEST,
    MANIFEST_COLUMNS,
    PARTIAL_MANIFEST,
    PREVIOUS_MANIFEST,
    EmbeddingStore,
)


def _products() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "offer_id": ["o1", "o2", "o3", "o4"],
            "title": ["Red Bell Peppers 500 g", "Hot Pepper Sauce", "Canvas Tool Bag", "Steel Claw Hammer"],
            "image_path": ["img/1.jpg", None, "img/3.jpg", None],
        },
        schema={"offer_id": pl.Utf8, "title": pl.Utf8, "image_path": pl.Utf8},
    )


def _vec(store: EmbeddingStore, offer_id: str, kind: str = "fused") -> np.ndarray:
    return store.vectors(kind, pl.Series([offer_id]))[0]


def _chunk_rows(store: EmbeddingStore) -> dict[str, int]:
    return {d.name: np.load(d / "text.npy", mmap_mode="r").shape[0] for d in (store.root / CHUNKS).iterdir()}


def test_first_run_encodes_everything(hashing_encoder, tmp_path) -> None:
    run = embed_products(_products(), hashing_encoder, tmp_path)
    assert (run.encoded, run.reused, run.dropped) == (4, 0, 0)
    assert hashing_encoder.encoded == 4
    manifest = run.store.manifest
    assert manifest.columns == list(MANIFEST_COLUMNS)
    assert manifest.get_column("offer_id").to_list() == ["o1", "o2", "o3", "o4"]
    # Null image paths are stored as "" so they compare equal on the next run.
    assert manifest.get_column("image_path").to_list() == ["img/1.jpg", "", "img/3.jpg", ""]
    assert manifest.get_column("model_version").unique().to_list() == ["hashing-v1"]
    assert not manifest.get_column("has_image").any() and not run.store.has_images
    expected = hashing_encoder.encode(_products().get_column("title").to_list())
    np.testing.assert_allclose(run.store.vectors(), expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(run.store.vectors("text"), run.store.vectors("fused"))


def test_store_is_not_visible_until_committed_and_round_trips(hashing_encoder, tmp_path) -> None:
    run = embed_products(_products(), hashing_encoder, tmp_path)
    assert EmbeddingStore.open(tmp_path) is None  # a run that fails before commit leaves no manifest
    run.store.commit()
    opened = EmbeddingStore.open(tmp_path)
    assert opened.dim == 32 and opened.image_dim is None
    assert opened.manifest.equals(run.store.manifest)
    np.testing.assert_array_equal(opened.vectors(), run.store.vectors())


def test_whole_chunk_in_order_is_the_memory_map_itself(hashing_encoder, tmp_path) -> None:
    run = embed_products(_products(), hashing_encoder, tmp_path)
    run.store.commit()
    matrix = EmbeddingStore.open(tmp_path).vectors()
    assert isinstance(matrix, np.memmap) and not matrix.flags.writeable


def test_unchanged_catalog_reuses_all_rows_and_writes_no_chunk(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    first.store.commit()
    hashing_encoder.encoded = 0
    second = embed_products(_products(), hashing_encoder, tmp_path, EmbeddingStore.open(tmp_path))
    assert (second.encoded, second.reused, second.dropped) == (0, 4, 0)
    assert hashing_encoder.encoded == 0
    assert second.store.manifest.equals(first.store.manifest)
    assert len(_chunk_rows(second.store)) == 1


def test_changed_title_writes_only_that_row(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    first.store.commit()
    changed = _products().with_columns(
        pl.when(pl.col("offer_id") == "o2")
        .then(pl.lit("Smoked Chipotle Sauce"))
        .otherwise(pl.col("title"))
        .alias("title")
    )
    hashing_encoder.encoded = 0
    second = embed_products(changed, hashing_encoder, tmp_path, EmbeddingStore.open(tmp_path), compact_dead_share=0.9)
    assert (second.encoded, second.reused, second.dropped) == (1, 3, 0)
    assert hashing_encoder.encoded == 1
    assert sorted(_chunk_rows(second.store).values()) == [1, 4]  # the new chunk holds the one new vector
    for oid in ("o1", "o3", "o4"):
        np.testing.assert_array_equal(_vec(second.store, oid), _vec(first.store, oid))
    new_o2 = _vec(second.store, "o2")
    np.testing.assert_allclose(new_o2, hashing_encoder.encode(["Smoked Chipotle Sauce"])[0], atol=1e-7)
    assert not np.allclose(new_o2, _vec(first.store, "o2"))


def test_many_dead_rows_are_compacted_into_one_chunk(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    first.store.commit()
    changed = _products().with_columns((pl.col("title") + " v2").alias("title"))
    changed = pl.concat([changed.head(2), _products().tail(2)])
    second = embed_products(changed, hashing_encoder, tmp_path, EmbeddingStore.open(tmp_path))
    assert second.compacted and second.store.manifest.get_column("chunk").n_unique() == 1
    assert second.store.manifest.get_column("row").to_list() == [0, 1, 2, 3]
    np.testing.assert_allclose(second.store.vectors(), hashing_encoder.encode(changed["title"].to_list()), atol=1e-7)


def test_commit_keeps_the_previous_generation_and_collects_older_chunks(hashing_encoder, tmp_path) -> None:
    stores = []
    catalog = _products()
    for i in range(3):
        catalog = catalog.with_columns((pl.col("title") + f" r{i}").alias("title"))
        run = embed_products(catalog, hashing_encoder, tmp_path, EmbeddingStore.open(tmp_path))
        run.store.commit()
        stores.append(run.store)
    assert (tmp_path / MANIFEST).exists() and (tmp_path / PREVIOUS_MANIFEST).exists()
    live = {c for s in stores[-2:] for c in s.manifest.get_column("chunk").unique().to_list()}
    assert {d.name for d in (tmp_path / CHUNKS).iterdir()} == live
    previous = EmbeddingStore.open(tmp_path, PREVIOUS_MANIFEST)
    np.testing.assert_array_equal(previous.vectors(), stores[-2].vectors())


def test_changed_image_path_reencodes_that_row(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    changed = _products().with_columns(
        pl.when(pl.col("offer_id") == "o4")
        .then(pl.lit("img/4.jpg"))
        .otherwise(pl.col("image_path"))
        .alias("image_path")
    )
    second = embed_products(changed, hashing_encoder, tmp_path, first.store)
    assert (second.encoded, second.reused, second.dropped) == (1, 3, 0)


def test_new_model_version_reencodes_everything(hashing_encoder, make_hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    v2 = make_hashing_encoder(model_version="hashing-v2", dim=32, seed=1)
    second = embed_products(_products(), v2, tmp_path, first.store)
    assert (second.encoded, second.reused, second.dropped) == (4, 0, 0)
    assert v2.encoded == 4
    assert second.store.manifest.get_column("model_version").unique().to_list() == ["hashing-v2"]
    np.testing.assert_allclose(second.store.vectors(), v2.encode(_products()["title"].to_list()), atol=1e-7)


def test_different_dimension_reencodes_everything(hashing_encoder, make_hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    # Same version string but a different vector size: the old vectors cannot be reused.
    wide = make_hashing_encoder(model_version="hashing-v1", dim=48)
    second = embed_products(_products(), wide, tmp_path, first.store)
    assert (second.encoded, second.reused) == (4, 0)
    assert second.store.vectors().shape == (4, 48)


def test_removed_products_dropped_and_new_product_encoded(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    catalog = pl.concat(
        [
            _products().filter(~pl.col("offer_id").is_in(["o1", "o3"])),
            pl.DataFrame({"offer_id": ["o5"], "title": ["Cordless Drill 18 V"], "image_path": [None]}),
        ],
        how="vertical_relaxed",
    )
    hashing_encoder.encoded = 0
    second = embed_products(catalog, hashing_encoder, tmp_path, first.store)
    assert (second.encoded, second.reused, second.dropped) == (1, 2, 2)
    assert hashing_encoder.encoded == 1
    assert second.store.manifest.get_column("offer_id").to_list() == ["o2", "o4", "o5"]
    np.testing.assert_allclose(_vec(second.store, "o5"), hashing_encoder.encode(["Cordless Drill 18 V"])[0], atol=1e-7)
    np.testing.assert_array_equal(_vec(second.store, "o4"), _vec(first.store, "o4"))


def test_store_vectors_align_to_the_requested_offers(hashing_encoder, tmp_path) -> None:
    store = embed_products(_products(), hashing_encoder, tmp_path).store
    rows = pl.DataFrame({"offer_id": ["o3", "o1", "o3", "o4"], "category_id": [7, 8, 9, 7]})
    matrix = store.vectors("fused", rows.get_column("offer_id"))
    assert matrix.shape == (4, 32) and matrix.dtype == np.float32
    for i, oid in enumerate(["o3", "o1", "o3", "o4"]):
        np.testing.assert_array_equal(matrix[i], _vec(store, oid))


def test_store_vectors_name_the_missing_offer(hashing_encoder, tmp_path) -> None:
    store = embed_products(_products(), hashing_encoder, tmp_path).store
    rows = pl.DataFrame({"offer_id": ["o1", "ghost-9", "ghost-3"]})
    with pytest.raises(ValueError, match=r"2 offer\(s\) have no embedding, e\.g\. 'ghost-9'"):
        store.vectors("fused", rows.get_column("offer_id"))


def test_vectors_array_series_round_trip() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((5, 7)).astype(np.float32)
    series = array_series("v", matrix)
    assert series.dtype == pl.Array(pl.Float32, 7)
    assert series.len() == 5
    back = vectors(pl.DataFrame([series]), "v")
    assert back.dtype == np.float32 and back.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(back, matrix)
    # float64 input is stored as float32.
    np.testing.assert_array_equal(vectors(pl.DataFrame([array_series("v", matrix.astype(np.float64))]), "v"), matrix)


def test_vectors_of_empty_frame_keeps_dimension() -> None:
    empty = pl.DataFrame([array_series("embedding", np.zeros((0, 12)))])
    out = vectors(empty)
    assert out.shape == (0, 12) and out.dtype == np.float32


def test_hashing_encoder_is_deterministic_and_normalised(hashing_encoder, make_hashing_encoder) -> None:
    a = hashing_encoder.encode(["red bell peppers", "fresh red bell peppers", "canvas tool bag"])
    b = make_hashing_encoder().encode(["red bell peppers", "fresh red bell peppers", "canvas tool bag"])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert a[0] @ a[1] > a[0] @ a[2]
    assert hashing_encoder.encoded == 3 and hashing_encoder.calls == 1


def test_empty_catalog_drops_everything(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder, tmp_path)
    run = embed_products(_products().clear(), hashing_encoder, tmp_path, first.store)
    assert (run.encoded, run.reused, run.dropped) == (0, 0, 4)
    assert run.store.height == 0
    assert run.store.manifest.columns == list(MANIFEST_COLUMNS)


def test_hashing_bag_of_words_encoder_is_deterministic_and_clusters_shared_words() -> None:
    from seestocks_rank.models.encoders import HashingEncoder

    texts = ["Bosch Cordless Drills 18V", "cordless drill bosch", "Hot Sauce Tabasco", ""]
    a = HashingEncoder(dim=64).encode(texts)
    np.testing.assert_array_equal(a, HashingEncoder(dim=64).encode(texts))
    np.testing.assert_allclose(np.linalg.norm(a[:3], axis=1), 1.0, atol=1e-6)
    assert (a[3] == 0).all()  # no words: a zero vector
    assert a[0] @ a[1] > 0.7 and abs(a[0] @ a[2]) < 0.5
    assert HashingEncoder(dim=64, seed=1).model_version != HashingEncoder(dim=64).model_version


class _DiesOnSecondSlice:
    """An encoder whose process 'dies' (raises) on its second call: a run killed mid-catalog."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0
        self.dim, self.model_version = inner.dim, inner.model_version

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt("killed")
        return self.inner.encode(texts)


def test_a_run_killed_mid_encoding_resumes_from_the_slices_it_wrote(hashing_encoder, tmp_path) -> None:
    dying = _DiesOnSecondSlice(hashing_encoder)
    with pytest.raises(KeyboardInterrupt):
        embed_products(_products(), dying, tmp_path, slice_rows=2)
    assert (tmp_path / PARTIAL_MANIFEST).exists() and not (tmp_path / MANIFEST).exists()
    hashing_encoder.encoded = 0

    run = embed_products(_products(), hashing_encoder, tmp_path, EmbeddingStore.open(tmp_path), slice_rows=2)
    assert (run.resumed, run.encoded, hashing_encoder.encoded) == (2, 2, 2)  # the first slice is not redone
    run.store.commit()
    assert not (tmp_path / PARTIAL_MANIFEST).exists()
    uninterrupted = embed_products(_products(), hashing_encoder, tmp_path / "whole").store
    for offer in ("o1", "o2", "o3", "o4"):
        np.testing.assert_array_equal(_vec(run.store, offer), _vec(uninterrupted, offer))


def test_a_partial_manifest_of_another_model_is_not_resumed(hashing_encoder, tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        embed_products(_products(), _DiesOnSecondSlice(hashing_encoder), tmp_path, slice_rows=2)
    hashing_encoder.model_version = "another-model"
    run = embed_products(_products(), hashing_encoder, tmp_path, slice_rows=2)
    assert (run.resumed, run.encoded) == (0, 4)


def test_a_store_from_before_image_stamps_opens_and_text_rows_are_reused(hashing_encoder, tmp_path) -> None:
    run = embed_products(_products(), hashing_encoder, tmp_path)
    run.store.commit()
    pl.read_parquet(tmp_path / MANIFEST).drop("image_stamp").write_parquet(tmp_path / MANIFEST)
    old = EmbeddingStore.open(tmp_path)
    assert old.manifest.columns == list(MANIFEST_COLUMNS) and old.manifest["image_stamp"].to_list() == [""] * 4
    again = embed_products(_products(), hashing_encoder, tmp_path, old)
    assert (again.encoded, again.reused) == (0, 4)  # text-only vectors never depended on image files
