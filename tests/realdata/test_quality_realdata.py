"""Quality protocols on small slices of the real public data in ../shared/data (each test < 30 s).

The hashing encoder stands in for MiniLM so the tests stay fast; they check the protocols' mechanics on
real catalogs, not the benchmark figures (``make bench-quality`` measures those).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.benchmarks.datasets import (
    load_fashion,
    load_flipkart,
    load_matching,
    load_pricerunner,
    taxonomy_from_paths,
)
from seestocks_rank.benchmarks.dedup import dedup_benchmark, matching_benchmark
from seestocks_rank.benchmarks.mistag import inject_noise, mistag_benchmark, select_pages
from seestocks_rank.benchmarks.siblings import sibling_benchmark
from seestocks_rank.inputs.catalog import validate_catalog

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"public data folder {DATA} is absent (it is present in CI)"),
]


@pytest.fixture(scope="module")
def flipkart() -> tuple[pl.DataFrame, object]:
    return load_flipkart(DATA / "flipkart" / "flipkart_20k_joined.csv.gz")


def test_flipkart_paths_are_cleaned(flipkart) -> None:
    raw, tax = flipkart
    assert raw.height > 19_000
    paths = tax.nodes["path"]
    assert not paths.str.contains("...", literal=True).any()  # truncated product names are gone
    assert not paths.str.contains("Rastogi Handicrafts").any()  # brand-level groupings are gone
    assert 500 < len(tax) < 3000


def test_flipkart_noise_protocol_is_deterministic(flipkart) -> None:
    raw, tax = flipkart
    products = validate_catalog(raw, tax.ids, check_images=False).products
    cats = products["category_id"].to_numpy()
    pages = select_pages(tax, cats, 30)["category_id"].to_numpy()
    a1, n1 = inject_noise(cats, tax, pages, 0.1, 7)
    a2, n2 = inject_noise(cats, tax, pages, 0.1, 7)
    np.testing.assert_array_equal(a1, a2)
    assert n1.sum() == round(0.1 * len(cats))
    assert not tax.is_within(a1[n1], cats[n1]).any() and not tax.is_within(cats[n1], a1[n1]).any()


def test_flipkart_mistag_slice(flipkart, hashing_encoder) -> None:
    raw, tax = flipkart
    slice_ = raw.filter(pl.col("title").str.contains(r"(?i)shirt|watch|ring|mug|bra\b"))
    result = mistag_benchmark(slice_, tax, hashing_encoder, noise=0.1, seed=7, min_page_products=30)
    assert result["pages"] >= 5
    assert result["pipeline"]["pages_with_mistagged@50"] <= result["naive"]["pages_with_mistagged@50"]
    assert result["pipeline"]["removal_recall"] > 0.5


def test_fashion_sibling_slice(hashing_encoder) -> None:
    fashion, _ = load_fashion(DATA / "fashion_products" / "styles.csv.gz")
    assert fashion.height > 44_000
    part = fashion.filter(pl.col("path").str.starts_with("Footwear") | pl.col("path").str.starts_with("Accessories"))
    part = part.head(4000)
    tax, ids = taxonomy_from_paths(part["path"])
    part = part.with_columns(pl.col("path").replace_strict(ids, return_dtype=pl.Int64).alias("category_id"))
    grid = {"margin": [0.05], "lexical_weight": [0.05], "prompt_weight": [0.0]}
    result = sibling_benchmark(part, tax, hashing_encoder, grid=grid)
    assert result["test_products"] > 500 and result["layer_params"] == {k: v[0] for k, v in grid.items()}
    for side in ("without_layer", "with_layer"):
        assert 0 <= result[side]["sibling_confusion"] <= 1 - result[side]["exact"]


def test_pricerunner_dedup_slice(hashing_encoder) -> None:
    offers = load_pricerunner(DATA / "pricerunner" / "pricerunner_aggregate.csv")
    part = offers.filter(pl.col("block") == "Mobile Phones").head(1500)
    result = dedup_benchmark(part, hashing_encoder)
    assert result["matcher"]["f1"] > 0.3
    assert 0 < result["retailer_diversity"]["max_retailer_share@10_after"] <= 0.5


def test_abt_buy_matching(hashing_encoder) -> None:
    tables = load_matching(DATA / "product_matching" / "abt-buy")
    tables = {name: t.head(800) if name in ("train", "valid", "test") else t for name, t in tables.items()}
    result = matching_benchmark(tables, hashing_encoder)
    assert result["test_pairs"] == 800
    assert result["matcher"]["f1"] >= result["rule"]["f1"]
