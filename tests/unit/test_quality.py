"""Tests for seestocks_rank.quality: path cleaning, the noise protocol, metrics and the benchmark runners."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.datasets import catalog_frame, clean_flipkart_paths, taxonomy_from_paths
from seestocks_rank.benchmarks.dedup import dedup_benchmark
from seestocks_rank.benchmarks.mistag import inject_noise, mistag_benchmark, select_pages
from seestocks_rank.benchmarks.siblings import sibling_confusion
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.store.model_cache import CachedTextEncoder, cached


def test_clean_flipkart_paths_drops_product_and_brand_levels() -> None:
    raw = pl.DataFrame(
        {
            "uniq_id": ["1", "2", "3", "4"],
            "product_name": [
                "Rastogi Handicrafts JOINT LESS 950 ml Bottle",
                "RGT Full Sleeve Striped Men's Sweatshirt",
                "Avaron Projekt Ship Brooch",
                "Pet Club51 PC231 L Pet Bed",
            ],
            "retail_price": [1599.0, 1535.0, 1299.0, 3000.0],
            "discounted_price": [1099.0, None, 899.0, 1549.0],
            "brand": ["Rastogi Handicrafts", None, "Avaron Projekt", "Pet Club51"],
            "product_category_tree": [
                '["Kitchen >> Bottles >> Rastogi Handicrafts Water bottle >> Rastogi Handicrafts JOINT LESS..."]',
                '["Clothing >> Men\'s Clothing >> Sweatshirts >> RGT Sweatshirts"]',
                '["Jewellery >> Brooches >> Avaron Projekt Ship Brooch (White)"]',
                '["Furniture >> Pet Furniture"]',
            ],
        }
    )
    out = clean_flipkart_paths(raw)
    assert out["path"].to_list() == [
        "Kitchen > Bottles",
        "Clothing > Men's Clothing > Sweatshirts",
        "Jewellery > Brooches",
        "Furniture > Pet Furniture",
    ]
    assert out["price"].to_list() == [1099.0, 1535.0, 899.0, 1549.0]  # discounted, else retail


def _tree() -> tuple[Taxonomy, dict[str, int]]:
    leaves = [f"R{r} > M{r}{m} > L{r}{m}{leaf}" for r in range(3) for m in range(3) for leaf in range(3)]
    return taxonomy_from_paths(pl.Series(leaves))


def test_taxonomy_from_paths_holds_every_prefix() -> None:
    tax, ids = _tree()
    assert len(tax) == 3 + 9 + 27
    assert tax.path(ids["R1 > M12"]) == "R1 > M12"
    assert tax.parent(ids["R1 > M12 > L120"]) == ids["R1 > M12"]


def test_noise_is_seeded_and_follows_the_protocol() -> None:
    tax, ids = _tree()
    leaves = np.array([v for k, v in ids.items() if k.count(">") == 2])
    cats = np.repeat(leaves, 40)
    pages = select_pages(tax, cats, 30)["category_id"].to_numpy()
    assert len(pages) == len(tax)  # every node has >= 40 products at or below it
    a1, n1 = inject_noise(cats, tax, pages, 0.1, seed=3)
    a2, n2 = inject_noise(cats, tax, pages, 0.1, seed=3)
    a3, _ = inject_noise(cats, tax, pages, 0.1, seed=4)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(n1, n2)
    assert not np.array_equal(a1, a3)
    assert n1.sum() == round(0.1 * len(cats)) and (a1 != cats).sum() == n1.sum()
    wrong, true = a1[n1], cats[n1]
    assert not tax.is_within(wrong, true).any() and not tax.is_within(true, wrong).any()
    siblings = tax.lca_depth(wrong, true) == 2  # a leaf's sibling page shares its parent
    assert abs(siblings.mean() - 0.5) < 0.1
    assert np.isin(wrong, pages).all()
    clean, none = inject_noise(cats, tax, pages, 0.0, seed=3)
    np.testing.assert_array_equal(clean, cats) and not none.any()


def test_sibling_confusion() -> None:
    tax, ids = _tree()
    true = np.array([ids["R0 > M00 > L000"]] * 4 + [ids["R0 > M00"]])
    pred = np.array(
        [ids["R0 > M00 > L001"], ids["R0 > M00 > L000"], ids["R0 > M01 > L010"], ids["R0 > M00"], ids["R0 > M01"]]
    )
    assert sibling_confusion(pred, true, tax).tolist() == [True, False, False, False, True]


def _catalog(n_per_leaf: int = 12) -> tuple[pl.DataFrame, Taxonomy]:
    words = {"R0 > M00 > L000": "pepper", "R0 > M00 > L001": "tomato", "R0 > M01 > L010": "drill",
             "R0 > M01 > L011": "hammer", "R1 > M10 > L100": "shirt", "R1 > M10 > L101": "jeans"}  # fmt: skip
    rows = [
        {"product_id": f"{leaf}-{i}", "title": f"{word} item {word} model {i}", "price": 10.0 + i, "path": leaf}
        for leaf, word in words.items()
        for i in range(n_per_leaf)
    ]
    df = pl.DataFrame(rows)
    tax, ids = taxonomy_from_paths(df["path"])
    return catalog_frame(df, ids, "shop", "EUR"), tax


def test_mistag_benchmark_runs_side_by_side(hashing_encoder) -> None:
    raw, tax = _catalog()
    result = mistag_benchmark(raw, tax, hashing_encoder, noise=0.1, seed=1, min_page_products=10)
    assert result["mistagged_products"] == round(0.1 * raw.height)
    for side in ("naive", "pipeline"):
        assert {"pages_with_mistagged@10", "pages_with_mistagged@50", "removal_recall", "false_removal"} <= set(
            result[side]
        )
    assert result["pipeline"]["pages_with_mistagged@50"] <= result["naive"]["pages_with_mistagged@50"]
    assert result["pipeline"]["removal_recall"] >= 0.5
    again = mistag_benchmark(raw, tax, hashing_encoder, noise=0.1, seed=1, min_page_products=10)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in result.items() if k != "seconds"}
    clean = mistag_benchmark(raw, tax, hashing_encoder, noise=0.0, seed=1, min_page_products=10)
    assert clean["mistagged_pairs"] == 0 and clean["naive"]["pages_with_mistagged@10"] == 0.0


def test_dedup_benchmark(hashing_encoder) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for c in range(120):
        brand, model = ["acme", "bolt", "cora", "dyna"][c % 4], f"x{c}00"
        for r in range(3):
            title = f"{brand} {model} {['black', 'grey', ''][r]} {c % 7}gb"
            price = float(rng.integers(10, 20))
            rows.append(
                {
                    "product_id": f"{c}-{r}",
                    "title": title,
                    "retailer": f"shop{(c + r) % 9}",
                    "price": price,
                    "cluster_id": c,
                }
            )
    result = dedup_benchmark(pl.DataFrame(rows), hashing_encoder)
    assert set(result["matcher"]) == {"precision", "recall", "f1"} and set(result["rule"]) == set(result["matcher"])
    assert result["matcher"]["f1"] >= 0.5
    assert "max_retailer_share@10_after" in result["retailer_diversity"]
    json.dumps(result)


def test_file_backed_text_cache_encodes_each_text_once(tmp_path, hashing_encoder) -> None:
    path = tmp_path / "text_vectors.parquet"
    with cached(CachedTextEncoder, hashing_encoder, path) as encoder:
        first = encoder.encode(["a b", "c", "a b"])
    assert hashing_encoder.encoded == 2
    with cached(CachedTextEncoder, hashing_encoder, path) as encoder:
        again = encoder.encode(["c", "a b"])
    assert hashing_encoder.encoded == 2
    np.testing.assert_allclose(again, first[[1, 0]])
