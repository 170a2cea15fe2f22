"""A labelled catalog written as run inputs: mis-tags at the asked rate, judgments graded by the truth on
some pages, and the other pages listed for scoring."""

from pathlib import Path

import polars as pl
import pytest

from seestocks_rank.benchmarks.run_inputs import pricerunner_catalog, with_photos, write_run_inputs
from seestocks_rank.inputs.taxonomy import Taxonomy

TAXONOMY = """# Google_Product_Taxonomy_Version: test
1 - Food
2 - Food > Peppers
3 - Food > Sauces
4 - Hardware
5 - Hardware > Tool Bags
6 - Hardware > Tool Boxes
7 - Hardware > Tool Boxes > Metal Tool Boxes
"""


def test_run_inputs_from_a_labelled_catalog(tmp_path: Path) -> None:
    taxonomy = Taxonomy.from_text(TAXONOMY)
    leaves = [2, 3, 5, 7]
    catalog = pl.DataFrame(
        {
            "product_id": [f"p{i}" for i in range(400)],
            "title": [f"product {i}" for i in range(400)],
            "retailer": ["shop"] * 400,
            "price": ["1.0"] * 400,
            "category_id": [str(leaves[i % 4]) for i in range(400)],
        }
    )
    summary = write_run_inputs(catalog, taxonomy, tmp_path, max_depth=2, min_products=30, judged_share=0.5)
    pages = pl.read_csv(tmp_path / "category_pages.csv").get_column("category_id").to_list()
    assert sorted(pages) == [1, 2, 3, 4, 5, 6]  # depth <= 2 with >= 30 products; 7 is too deep
    assert summary["mistagged"] == 40
    written = pl.read_csv(tmp_path / "catalog.csv", schema_overrides={"category_id": pl.String})
    truth = pl.read_csv(tmp_path / "truth.csv")
    assert (written.get_column("category_id").cast(pl.Int64) != truth.get_column("true_category_id")).sum() == 40
    judgments = pl.read_csv(tmp_path / "judgments.csv").join(truth, on="product_id")
    judged = set(judgments.get_column("category_id").to_list())
    assert len(judged) == 3 and set(judgments.get_column("grade").to_list()) == {0.0, 1.0}
    belongs = taxonomy.is_within(judgments["true_category_id"].to_numpy(), judgments["category_id"].to_numpy())
    assert (judgments.get_column("grade").to_numpy() == belongs).all()
    # a rater also grades products from around the page and from anywhere, not only the page's tagged ones
    tags = judgments.join(
        written.select("product_id", pl.col("category_id").cast(pl.Int64).alias("tag")), on="product_id"
    )
    untagged = ~taxonomy.is_within(tags["tag"].to_numpy(), tags["category_id"].to_numpy())
    assert 0.2 < untagged.mean() < 0.5
    scored = set(pl.read_csv(tmp_path / "scored_pages.csv").get_column("category_id").to_list())
    assert scored == set(pages) - judged
    assert Taxonomy.load(tmp_path / "taxonomy.txt") == taxonomy


def test_photos_keep_the_products_that_have_one(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for product in ("p1", "p3"):
        (photos / f"{product}.jpg").write_bytes(b"jpg " + product.encode())
    catalog = pl.DataFrame({"product_id": ["p1", "p2", "p3"], "title": ["a", "b", "c"]})
    out = tmp_path / "inputs"
    with_images = with_photos(catalog, photos, out)
    assert with_images.get_column("image_path").to_list() == ["images/p1.jpg", "images/p3.jpg"]
    assert (out / "images" / "p3.jpg").read_bytes() == b"jpg p3"  # copied beside the catalog
    text_only = with_photos(catalog, photos, tmp_path / "text", text_only=True)
    assert text_only.equals(with_images.drop("image_path"))  # the same rows, so the same mis-tags
    with pytest.raises(ValueError, match="no <product_id>.jpg"):
        with_photos(catalog, tmp_path, out)


def test_pricerunner_offers_become_a_multi_retailer_catalog_with_clusters_in_the_truth(tmp_path: Path) -> None:
    raw = tmp_path / "pricerunner.csv"
    raw.write_text(
        "product_id, product_title, vendor_id, cluster_id, cluster_label, category_id, category_label\n"
        "1,apple iphone 8 64gb,1,10,iPhone 8,2612,Mobile Phones\n"
        "2,apple iphone 8 64 gb silver,2,10,iPhone 8,2612,Mobile Phones\n"
        "3,bosch serie 4 dishwasher,1,11,Bosch Serie 4,2613,Dishwashers\n"
    )
    catalog, taxonomy = pricerunner_catalog(raw, seed=1)
    assert catalog.get_column("retailer").to_list() == ["1", "2", "1"]
    assert sorted(taxonomy.nodes.get_column("name").to_list()) == ["Dishwashers", "Mobile Phones"]
    prices = catalog.get_column("price").cast(pl.Float64).to_numpy()
    assert 0.8 < prices[0] / prices[1] < 1.25  # one product: its merchants' synthetic prices within +-10%
    out = tmp_path / "inputs"
    write_run_inputs(catalog, taxonomy, out, min_products=1, mistag_rate=0.0, judged_share=0.5, seed=1)
    assert "cluster_id" not in pl.read_csv(out / "catalog.csv").columns  # the truth's, not the catalog's
    assert pl.read_csv(out / "truth.csv").get_column("cluster_id").to_list() == [10, 10, 11]
