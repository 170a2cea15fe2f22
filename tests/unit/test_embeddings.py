"""Tests for seestocks_rank.embeddings: incremental embedding and vector helpers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seestocks_rank.embeddings import EMBEDDING_COLUMNS, array_series, embed_products, vectors, with_vectors


def _products() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "offer_id": ["o1", "o2", "o3", "o4"],
            "title": ["Red Bell Peppers 500 g", "Hot Pepper Sauce", "Canvas Tool Bag", "Steel Claw Hammer"],
            "image_path": ["img/1.jpg", None, "img/3.jpg", None],
        },
        schema={"offer_id": pl.Utf8, "title": pl.Utf8, "image_path": pl.Utf8},
    )


def _vec(table: pl.DataFrame, offer_id: str) -> np.ndarray:
    return vectors(table.filter(pl.col("offer_id") == offer_id))[0]


def test_first_run_encodes_everything(hashing_encoder) -> None:
    run = embed_products(_products(), hashing_encoder)
    assert (run.encoded, run.reused, run.dropped) == (4, 0, 0)
    assert hashing_encoder.encoded == 4
    table = run.table
    assert table.columns == list(EMBEDDING_COLUMNS)
    assert table.get_column("offer_id").to_list() == ["o1", "o2", "o3", "o4"]
    assert table.schema["embedding"] == pl.Array(pl.Float32, 32)
    # Null image paths are stored as "" so they compare equal on the next run.
    assert table.get_column("image_path").to_list() == ["img/1.jpg", "", "img/3.jpg", ""]
    assert table.get_column("model_version").unique().to_list() == ["hashing-v1"]
    assert table.get_column("image_embedding").null_count() == 4
    expected = hashing_encoder.encode(_products().get_column("title").to_list())
    np.testing.assert_allclose(vectors(table), expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(vectors(table, "text_embedding"), vectors(table))


def test_unchanged_catalog_reuses_all_rows(hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    hashing_encoder.encoded = 0
    second = embed_products(_products(), hashing_encoder, previous=first.table)
    assert (second.encoded, second.reused, second.dropped) == (0, 4, 0)
    assert hashing_encoder.encoded == 0
    assert second.table.equals(first.table)


def test_changed_title_reencodes_only_that_row(hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    changed = _products().with_columns(
        pl.when(pl.col("offer_id") == "o2")
        .then(pl.lit("Smoked Chipotle Sauce"))
        .otherwise(pl.col("title"))
        .alias("title")
    )
    hashing_encoder.encoded = 0
    second = embed_products(changed, hashing_encoder, previous=first.table)
    assert (second.encoded, second.reused, second.dropped) == (1, 3, 0)
    assert hashing_encoder.encoded == 1
    for oid in ("o1", "o3", "o4"):
        np.testing.assert_array_equal(_vec(second.table, oid), _vec(first.table, oid))
    new_o2 = _vec(second.table, "o2")
    np.testing.assert_allclose(new_o2, hashing_encoder.encode(["Smoked Chipotle Sauce"])[0], atol=1e-7)
    assert not np.allclose(new_o2, _vec(first.table, "o2"))
    assert second.table.filter(pl.col("offer_id") == "o2").get_column("title").item() == "Smoked Chipotle Sauce"


def test_changed_image_path_reencodes_that_row(hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    changed = _products().with_columns(
        pl.when(pl.col("offer_id") == "o4")
        .then(pl.lit("img/4.jpg"))
        .otherwise(pl.col("image_path"))
        .alias("image_path")
    )
    second = embed_products(changed, hashing_encoder, previous=first.table)
    assert (second.encoded, second.reused, second.dropped) == (1, 3, 0)


def test_new_model_version_reencodes_everything(hashing_encoder, make_hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    v2 = make_hashing_encoder(model_version="hashing-v2", dim=32, seed=1)
    second = embed_products(_products(), v2, previous=first.table)
    assert (second.encoded, second.reused, second.dropped) == (4, 0, 0)
    assert v2.encoded == 4
    assert second.table.get_column("model_version").unique().to_list() == ["hashing-v2"]
    np.testing.assert_allclose(vectors(second.table), v2.encode(_products().get_column("title").to_list()), atol=1e-7)


def test_different_dimension_reencodes_everything(hashing_encoder, make_hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    # Same version string but a different vector size: the old vectors cannot be reused.
    wide = make_hashing_encoder(model_version="hashing-v1", dim=48)
    second = embed_products(_products(), wide, previous=first.table)
    assert (second.encoded, second.reused) == (4, 0)
    assert second.table.schema["embedding"] == pl.Array(pl.Float32, 48)


def test_removed_products_dropped_and_new_product_encoded(hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    catalog = pl.concat(
        [
            _products().filter(~pl.col("offer_id").is_in(["o1", "o3"])),
            pl.DataFrame({"offer_id": ["o5"], "title": ["Cordless Drill 18 V"], "image_path": [None]}),
        ],
        how="vertical_relaxed",
    )
    hashing_encoder.encoded = 0
    second = embed_products(catalog, hashing_encoder, previous=first.table)
    assert (second.encoded, second.reused, second.dropped) == (1, 2, 2)
    assert hashing_encoder.encoded == 1
    assert second.table.get_column("offer_id").to_list() == ["o2", "o4", "o5"]
    np.testing.assert_allclose(_vec(second.table, "o5"), hashing_encoder.encode(["Cordless Drill 18 V"])[0], atol=1e-7)
    np.testing.assert_array_equal(_vec(second.table, "o4"), _vec(first.table, "o4"))


def test_previous_round_trips_through_parquet(hashing_encoder, tmp_path) -> None:
    first = embed_products(_products(), hashing_encoder)
    path = tmp_path / "emb.parquet"
    first.table.write_parquet(path)
    second = embed_products(_products(), hashing_encoder, previous=pl.read_parquet(path))
    assert (second.encoded, second.reused) == (0, 4)


def test_with_vectors_aligns_rows_to_vectors(hashing_encoder) -> None:
    table = embed_products(_products(), hashing_encoder).table
    rows = pl.DataFrame({"offer_id": ["o3", "o1", "o3", "o4"], "category_id": [7, 8, 9, 7]})
    joined, matrix = with_vectors(rows, table)
    assert joined.columns == ["offer_id", "category_id"]
    assert joined.get_column("offer_id").to_list() == ["o3", "o1", "o3", "o4"]
    assert joined.get_column("category_id").to_list() == [7, 8, 9, 7]
    assert matrix.shape == (4, 32) and matrix.dtype == np.float32
    for i, oid in enumerate(["o3", "o1", "o3", "o4"]):
        np.testing.assert_array_equal(matrix[i], _vec(table, oid))


def test_with_vectors_names_the_missing_offer(hashing_encoder) -> None:
    table = embed_products(_products(), hashing_encoder).table
    rows = pl.DataFrame({"offer_id": ["o1", "ghost-9", "ghost-3"]})
    with pytest.raises(ValueError, match=r"2 offer\(s\) have no embedding, e\.g\. 'ghost-9'"):
        with_vectors(rows, table)


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
    a = hashing_encoder.encode(["red bell peppers", "fresh peppers", "canvas tool bag"])
    b = make_hashing_encoder().encode(["red bell peppers", "fresh peppers", "canvas tool bag"])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert a[0] @ a[1] > a[0] @ a[2]
    assert hashing_encoder.encoded == 3 and hashing_encoder.calls == 1


def test_empty_catalog_drops_everything(hashing_encoder) -> None:
    first = embed_products(_products(), hashing_encoder)
    run = embed_products(_products().clear(), hashing_encoder, previous=first.table)
    assert (run.encoded, run.reused, run.dropped) == (0, 0, 4)
    assert run.table.height == 0
    assert run.table.columns == list(EMBEDDING_COLUMNS)
    assert vectors(run.table).shape == (0, 32)
