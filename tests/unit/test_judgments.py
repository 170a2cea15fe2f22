"""The one judgments loader, in both formats."""

from pathlib import Path

import polars as pl
import pytest

from seestocks_rank.inputs.judgments import judged_pairs, load_judgments, load_query_judgments


def test_page_judgments_are_typed_stripped_and_the_last_duplicate_wins(tmp_path: Path):
    f = tmp_path / "j.csv"
    f.write_text("category_id,product_id,grade,extra\n 7 , p1 ,2,x\n7,p2,0.5,y\n7,p1,3,z\n")
    j = load_judgments(f)
    assert j.columns == ["category_id", "product_id", "grade"]
    assert j.schema["category_id"] == pl.Int64 and j.schema["grade"] == pl.Float64
    assert sorted(j.iter_rows()) == [(7, "p1", 3.0), (7, "p2", 0.5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("category_id,product_id\n1,p\n", r"lack column\(s\) \['grade'\]"),
        ("category_id,product_id,grade\n1,p,2\nbad,q,1\n", "row 1 has a missing or non-numeric category_id"),
        ("category_id,product_id,grade\n1,p,\n", "row 0 has a missing or non-numeric grade"),
    ],
)
def test_page_judgments_name_the_missing_column_or_the_bad_row(tmp_path: Path, text: str, message: str):
    f = tmp_path / "j.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_judgments(f)


def test_query_judgments_keep_optional_columns_and_the_first_duplicate(tmp_path: Path):
    f = tmp_path / "q.csv"
    f.write_text("query_id,query,product_id,title,grade,price,retailer\n1,x,p,t,2,3.5,r\n1,x,p,t,1,9,r\n")
    j = load_query_judgments(f)
    assert j.columns == ["query_id", "query", "product_id", "title", "grade", "retailer", "price"]
    assert j.rows() == [("1", "x", "p", "t", 2.0, "r", 3.5)]


def test_judged_pairs_expand_a_product_to_its_offers_on_active_pages_only():
    judgments = pl.DataFrame({"category_id": [1, 2], "product_id": ["p", "p"], "grade": [3.0, 1.0]})
    products = pl.DataFrame({"offer_id": ["a|p", "b|p"], "product_id": ["p", "p"]})
    pairs = judged_pairs(judgments, products, pl.Series([1]))
    assert sorted(pairs.iter_rows()) == [(1, "a|p", 3.0), (1, "b|p", 3.0)]
