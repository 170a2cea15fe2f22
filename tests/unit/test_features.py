"""Tests for seestocks_rank.features: lexical match, robust z-scores and the pair feature table."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.numeric import robust_z
from seestocks_rank.reranking.signals import FEATURE_COLUMNS, compute_features, name_match
from seestocks_rank.retrieval.centroids import category_centroids

TAXONOMY = """\
1 - Food
2 - Food > Vegetables
3 - Food > Vegetables > Peppers
4 - Food > Vegetables > Onions
10 - Tools
11 - Tools > Hammers
"""
SIGMA = 1.4826


def _name_match(title: str, page: str) -> float:
    df = pl.DataFrame({"t": [title], "p": [page]})
    return df.select(name_match(pl.col("t"), pl.col("p"))).item()


@pytest.mark.parametrize(
    ("title", "page", "expected"),
    [
        ("Red Bell Peppers 500 g", "Peppers", 1.0),  # plural on both sides
        ("Red Bell Pepper 500 g", "Peppers", 1.0),  # singular title, plural page
        ("Red Bell Peppers 500 g", "Hot Sauce", 0.0),
        ("Hot Pepper Sauce", "Hot Sauce", 1.0),
        ("Sauce for Chicken", "Hot Sauce", 0.5),
        ("HOT SAUCE", "hot sauce", 1.0),  # case-insensitive
        ("Sauce Sauce", "Hot Sauce Sauce", 0.5),  # repeated words count once
        ("Jalapeño Salsa", "Jalapeño", 1.0),  # accented letters are word characters
        ("Glass Jar", "Glass", 1.0),  # "ss" endings are not stripped to "glas" on one side only
        ("Anything", "", 0.0),  # no page words: 0, not a division by zero
    ],
)
def test_name_match(title: str, page: str, expected: float) -> None:
    assert _name_match(title, page) == pytest.approx(expected)


def test_name_match_dtype_and_nulls() -> None:
    df = pl.DataFrame({"t": ["Hammer", None], "p": ["Hammers", "Hammers"]})
    out = df.select(name_match(pl.col("t"), pl.col("p")).alias("m")).get_column("m")
    assert out.dtype == pl.Float32
    assert out[0] == pytest.approx(1.0)
    assert out[1] is None


def test_name_match_short_plurals() -> None:
    assert _name_match("Canvas Tool Bag", "Tool Bags") == pytest.approx(1.0)


def test_robust_z_hand_computed() -> None:
    df = pl.DataFrame(
        {
            "v": [1.0, 3.0, 10.0, 10.0, 5.0, 5.0],
            "med": [2.0, 2.0, 2.0, 2.0, 5.0, None],
            "mad": [0.5, 0.5, 0.5, 2.0, None, 1.0],
        }
    )
    out = df.select(robust_z(pl.col("v"), pl.col("med"), pl.col("mad"), 1.0).alias("z")).get_column("z")
    assert out.dtype == pl.Float64
    expected = [
        (1 - 2) / (1.0 * SIGMA),  # MAD 0.5 floored to 1
        (3 - 2) / (1.0 * SIGMA),
        (10 - 2) / (1.0 * SIGMA),
        (10 - 2) / (2.0 * SIGMA),  # MAD above the floor is used as is
        0.0,  # null MAD: the floor
    ]
    assert out.to_list()[:5] == pytest.approx(expected, rel=1e-6)
    assert out[5] is None  # no median, no z


# Page 3 (Peppers) members: o1, o2, o3 priced 1, 2, 4 -> log-price median ln 2, MAD ln 2.
PRODUCTS = pl.DataFrame(
    {
        "offer_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"],
        "title": [
            "Red Bell Peppers 500 g",
            "Green Peppers",
            "Yellow Pepper",
            "White Onions 1 kg",
            "Claw Hammer",
            "Mini Peppers",
            "Giant Peppers",
            "Food Storage Box",
        ],
        "category_id": [3, 3, 3, 4, 11, 2, 1, 10],
        "price": [1.0, 2.0, 4.0, 3.0, 12.0, 0.5, 16.0, 9.0],
    }
)
PAGES = pl.DataFrame({"category_id": [3, 2, 11]})


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_text(TAXONOMY)


@pytest.fixture
def setup(taxonomy: Taxonomy, hashing_encoder):
    product_vectors = hashing_encoder.encode(PRODUCTS.get_column("title").to_list())
    prompts = hashing_encoder.encode(["Peppers", "Vegetables", "Hammers"])
    centroids = category_centroids(PAGES, taxonomy, PRODUCTS, product_vectors, prompts)
    return product_vectors, centroids


def _features(setup, taxonomy: Taxonomy, pairs: pl.DataFrame) -> pl.DataFrame:
    product_vectors, centroids = setup
    return compute_features(pairs, PRODUCTS, product_vectors, centroids, taxonomy, chunk_rows=2)


def test_taxonomy_features_in_page_sibling_other_root(setup, taxonomy: Taxonomy) -> None:
    pairs = pl.DataFrame(
        {
            "category_id": [3, 3, 3, 2, 2, 11],
            "offer_id": ["o1", "o4", "o5", "o1", "o7", "o5"],
        }
    )
    out = _features(setup, taxonomy, pairs)
    # o1 tagged in the page; o4 in sibling Onions; o5 in Tools > Hammers (other root, depth 2 vs 3);
    # o1 tagged in a child of page 2; o7 tagged in page 2's parent; o5 on its own page.
    assert out.get_column("taxonomy_distance").to_list() == [0.0, 2.0, 5.0, 1.0, 1.0, 0.0]
    assert out.get_column("assigned_within_page").to_list() == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert out.schema["taxonomy_distance"] == pl.Float32
    assert out.schema["assigned_within_page"] == pl.Float32


def test_name_match_uses_page_leaf_name(setup, taxonomy: Taxonomy) -> None:
    pairs = pl.DataFrame({"category_id": [3, 3, 11, 11, 2, 2], "offer_id": ["o1", "o5", "o5", "o2", "o4", "o8"]})
    out = _features(setup, taxonomy, pairs)
    # Leaf names: Peppers, Peppers, Hammers ("Claw Hammer" matches), Hammers, Vegetables, Vegetables
    # ("Food Storage Box" would score 0.5 against the full path "Food > Vegetables").
    assert out.get_column("name_match").to_list() == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_price_z_sign_and_value(setup, taxonomy: Taxonomy) -> None:
    _, centroids = setup
    peppers = centroids.filter(pl.col("category_id") == 3).row(0, named=True)
    assert peppers["log_price_median"] == pytest.approx(math.log(2))
    assert peppers["log_price_mad"] == pytest.approx(math.log(2))
    pairs = pl.DataFrame({"category_id": [3, 3, 3], "offer_id": ["o6", "o7", "o2"]})
    out = _features(setup, taxonomy, pairs)
    z = out.get_column("price_z").to_list()
    # ln(0.5 / 2) / (ln 2 * 1.4826) = -2 / 1.4826; ln(16 / 2) / (ln 2 * 1.4826) = 3 / 1.4826; the median price: 0.
    assert z == pytest.approx([-2 / SIGMA, 3 / SIGMA, 0.0], abs=1e-5)
    assert out.get_column("price_abs_z").to_list() == pytest.approx([2 / SIGMA, 3 / SIGMA, 0.0], abs=1e-5)


def test_cosines_equal_numpy_dot_products(setup, taxonomy: Taxonomy) -> None:
    product_vectors, centroids = setup
    pairs = pl.DataFrame(
        {
            "category_id": [3, 3, 3, 2, 11, 11, 2],
            "offer_id": ["o1", "o4", "o5", "o6", "o5", "o2", "o7"],
        }
    )
    out = _features(setup, taxonomy, pairs)  # chunk_rows=2: several chunks and a ragged last one
    prow = [PRODUCTS.get_column("offer_id").to_list().index(o) for o in pairs.get_column("offer_id")]
    grow = [centroids.get_column("category_id").to_list().index(c) for c in pairs.get_column("category_id")]
    centroid_vectors = centroids.get_column("centroid").to_numpy()
    prompts = centroids.get_column("prompt_embedding").to_numpy()
    expected_centroid = np.einsum("ij,ij->i", product_vectors[prow], centroid_vectors[grow])
    expected_prompt = np.einsum("ij,ij->i", product_vectors[prow], prompts[grow])
    np.testing.assert_allclose(out.get_column("centroid_cosine").to_numpy(), expected_centroid, atol=1e-6)
    np.testing.assert_allclose(out.get_column("prompt_cosine").to_numpy(), expected_prompt, atol=1e-6)
    # centroid_cosine_z is the cosine's robust z against the page's member similarity spread.
    med = centroids.get_column("member_cos_median").to_numpy()[grow]
    mad = centroids.get_column("member_cos_mad").to_numpy()[grow]
    expected_z = (expected_centroid - med) / (np.maximum(mad, 0.02) * SIGMA)
    np.testing.assert_allclose(out.get_column("centroid_cosine_z").to_numpy(), expected_z, rtol=1e-4, atol=1e-4)


def test_columns_pass_through_and_placeholders(setup, taxonomy: Taxonomy) -> None:
    pairs = pl.DataFrame({"grade": [3, 0], "offer_id": ["o2", "o5"], "category_id": [3, 3], "note": ["a", "b"]})
    out = _features(setup, taxonomy, pairs)
    assert out.columns == ["grade", "offer_id", "category_id", "note", *FEATURE_COLUMNS]
    assert out.get_column("grade").to_list() == [3, 0]
    assert out.get_column("note").to_list() == ["a", "b"]
    assert out.get_column("offer_id").to_list() == ["o2", "o5"]  # row order kept
    assert out.get_column("visual_similarity").null_count() == 2
    assert out.get_column("cross_encoder_score").null_count() == 2
    # Helper columns of the join are not leaked.
    assert not {"_prow", "_grow", "title", "price", "path", "assigned_category_id"} & set(out.columns)


def test_unknown_offer_raises_naming_it(setup, taxonomy: Taxonomy) -> None:
    pairs = pl.DataFrame({"category_id": [3, 3], "offer_id": ["o1", "nope-42"]})
    with pytest.raises(ValueError, match=r"1 pair\(s\) .*category_id=3 offer_id=nope-42"):
        _features(setup, taxonomy, pairs)


def test_unknown_page_raises_naming_it(setup, taxonomy: Taxonomy) -> None:
    # Page 4 exists in the taxonomy but has no centroid row.
    pairs = pl.DataFrame({"category_id": [4], "offer_id": ["o4"]})
    with pytest.raises(ValueError, match=r"category_id=4 offer_id=o4"):
        _features(setup, taxonomy, pairs)


def test_predicted_distance_next_to_the_assigned_distance(setup, taxonomy: Taxonomy) -> None:
    product_vectors, centroids = setup
    # o4 is tagged Onions but the tree walk puts it under Peppers; o5 (Hammers) has no prediction.
    products = PRODUCTS.with_columns(pl.Series("predicted_category_id", [3, 3, 3, 3, None, 2, 1, 10], dtype=pl.Int64))
    pairs = pl.DataFrame({"category_id": [3, 3, 11], "offer_id": ["o1", "o4", "o5"]})
    out = compute_features(pairs, products, product_vectors, centroids, taxonomy)
    assert out.get_column("taxonomy_distance").to_list() == [0.0, 2.0, 0.0]
    assert out.get_column("predicted_distance").to_list() == [0.0, 0.0, None]
    without = compute_features(pairs, PRODUCTS, product_vectors, centroids, taxonomy)
    assert without.get_column("predicted_distance").null_count() == 3
