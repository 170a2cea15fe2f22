"""Tests for seestocks_rank.evaluation: the naive cheapest-first page and the misplacement metric."""

from __future__ import annotations

import polars as pl
import pytest

from seestocks_rank.evaluation.baselines import naive_rankings
from seestocks_rank.evaluation.metrics import page_misplacement
from seestocks_rank.inputs.taxonomy import Taxonomy

TAXONOMY = """\
1 - Food
2 - Food > Vegetables
3 - Food > Vegetables > Peppers
4 - Food > Vegetables > Onions
10 - Tools
11 - Tools > Hammers
"""


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_text(TAXONOMY)


PRODUCTS = pl.DataFrame(
    {
        "offer_id": ["a", "b", "c", "d", "e", "f"],
        "category_id": [3, 4, 2, 3, 11, 3],
        "price": [5.0, 1.0, 3.0, 2.0, 0.5, 2.0],
        "title": ["A", "B", "C", "D", "E", "F"],
    }
)


def test_naive_rankings_cheapest_first_with_descendants(taxonomy: Taxonomy) -> None:
    out = naive_rankings(PRODUCTS, pl.DataFrame({"category_id": [2, 3, 1, 4]}), taxonomy, page_size=10)
    assert out.columns == ["category_id", "offer_id", "price", "title", "rank"]
    assert out.schema["rank"] == pl.Int32
    pages = {cid: g.sort("rank") for (cid,), g in out.group_by("category_id")}
    # Vegetables holds its own product and those of Peppers and Onions; ties on price break on offer_id.
    assert pages[2].get_column("offer_id").to_list() == ["b", "d", "f", "c", "a"]
    assert pages[2].get_column("rank").to_list() == [1, 2, 3, 4, 5]
    assert pages[3].get_column("offer_id").to_list() == ["d", "f", "a"]
    assert pages[1].get_column("offer_id").to_list() == ["b", "d", "f", "c", "a"]
    assert pages[4].get_column("offer_id").to_list() == ["b"]
    # category_id is the page, not the product's own category.
    assert pages[2].filter(pl.col("offer_id") == "d").get_column("category_id").item() == 2
    assert "e" not in out.get_column("offer_id").to_list()  # Hammers is not a page here


def test_naive_rankings_truncated_to_page_size(taxonomy: Taxonomy) -> None:
    out = naive_rankings(PRODUCTS, pl.DataFrame({"category_id": [2, 3]}), taxonomy, page_size=2)
    assert out.select("category_id", "rank", "offer_id").sort("category_id", "rank").rows() == [
        (2, 1, "b"),
        (2, 2, "d"),
        (3, 1, "d"),
        (3, 2, "f"),
    ]


def test_naive_rankings_page_without_products(taxonomy: Taxonomy) -> None:
    out = naive_rankings(PRODUCTS, pl.DataFrame({"category_id": [10]}), taxonomy, page_size=5)
    assert out.get_column("offer_id").to_list() == ["e"]
    out = naive_rankings(PRODUCTS.filter(pl.col("category_id") != 11), pl.DataFrame({"category_id": [10]}), taxonomy, 5)
    assert out.height == 0


def test_page_misplacement_hand_computed(taxonomy: Taxonomy) -> None:
    rankings = pl.DataFrame(
        {
            "category_id": [2, 2, 2, 3, 3, 3, 10],
            "rank": [1, 2, 3, 1, 2, 3, 1],
            "offer_id": ["b", "x", "y", "f", "d2", "z", "e"],
        }
    )
    truth = pl.DataFrame(
        {
            "offer_id": ["b", "x", "y", "f", "d2", "z", "e"],
            "true_category_id": [4, 11, 1, 3, 3, 11, 4],
            "other": [0] * 7,
        }
    )
    # k=2. Page 2: b (Onions, within) + x (Hammers, wrong) -> share 1/2. y (rank 3) ignored.
    # Page 3: f, d2 both Peppers -> share 0; z (rank 3, wrong) ignored. Page 10: e (Onions, wrong) -> share 1.
    out = page_misplacement(rankings, truth, taxonomy, k=2)
    assert out == {"pages": 3, "pages_with_misplaced@2": pytest.approx(0.6667), "misplaced_share@2": 0.5}
    # k=3 also counts y (Food, an ancestor of Vegetables: not within it) and z: shares 2/3, 1/3, 1 -> mean 2/3.
    out3 = page_misplacement(rankings, truth, taxonomy, k=3)
    assert out3 == {"pages": 3, "pages_with_misplaced@3": 1.0, "misplaced_share@3": 0.6667}


def test_page_misplacement_empty(taxonomy: Taxonomy) -> None:
    rankings = pl.DataFrame({"category_id": [2], "rank": [5], "offer_id": ["b"]})
    truth = pl.DataFrame({"offer_id": ["b"], "true_category_id": [4]})
    assert page_misplacement(rankings, truth, taxonomy, k=3) == {
        "pages": 0,
        "pages_with_misplaced@3": 0.0,
        "misplaced_share@3": 0.0,
    }
