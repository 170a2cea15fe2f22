"""Scoring a published run against a truth file: the figures on hand-made pages, and bad truth files."""

from pathlib import Path

import polars as pl
import pytest

from seestocks_rank.evaluation.run_score import load_truth, score_pages, single_signal_pages
from seestocks_rank.inputs.errors import InputError

# Tree: 1 Food > 2 Peppers, 3 Sauces; 4 Tools > 5 Tool Bags
CLOSURE = pl.DataFrame(
    {"category_id": [1, 2, 2, 3, 3, 4, 5, 5], "ancestor_id": [1, 2, 1, 3, 1, 4, 5, 4]},
)
CATALOG = pl.DataFrame(
    {
        "offer_id": ["a|p1", "b|p1", "a|p2", "a|sauce", "b|bag", "a|p3"],
        "product_id": ["p1", "p1", "p2", "sauce", "bag", "p3"],
        "retailer": ["a", "b", "a", "a", "b", "a"],
        "category_id": [2, 2, 2, 2, 5, 2],  # the sauce is mis-tagged under Peppers
    }
)


def _truth(tmp_path: Path, rows: dict) -> pl.DataFrame:
    path = tmp_path / "truth.csv"
    pl.DataFrame(rows).write_csv(path)
    return load_truth(path, CATALOG)


def test_figures_of_a_page_with_a_misplaced_product_and_a_second_offer(tmp_path: Path) -> None:
    truth = _truth(
        tmp_path,
        {
            "product_id": ["p1", "p2", "sauce", "bag", "p3"],
            "true_category_id": [2, 2, 3, 5, 2],
            "cluster_id": ["c1", "c2", "c3", "c4", "c5"],
        },
    )
    assert truth.height == 6  # p1 names both retailers' offers
    tagged = CATALOG.select("category_id", "offer_id")
    shown = pl.DataFrame(
        {
            "category_id": [2, 2, 2, 2, 5],
            "offer_id": ["a|p1", "b|p1", "a|sauce", "a|p2", "b|bag"],
            "retailer": ["a", "b", "a", "a", "b"],
            "rank": [1, 2, 3, 4, 1],
        }
    )
    at2 = score_pages(shown, tagged, truth, CLOSURE, pl.Series([2, 5]), k=2)
    assert at2["pages_misplaced@2"] == 0.0  # the sauce is third
    assert at2["duplicate_slots@2"] == pytest.approx(1 / 3)  # b|p1 repeats c1: 1 of 3 slots
    at4 = score_pages(shown, tagged, truth, CLOSURE, pl.Series([2, 5]), k=4)
    assert at4["pages_misplaced@4"] == 0.5
    # Peppers: clusters c1, c2, c5 belong and are tagged; c1 and c2 shown -> 2/3; Tool Bags: 1/1.
    assert at4["coverage@4"] == pytest.approx((2 / 3 + 1) / 2)
    assert at4["max_retailer_share@4"] == pytest.approx((3 / 4 + 1) / 2)
    assert at4["shown@4"] == pytest.approx((4 + 1) / 2)


def test_truth_by_offer_id_and_per_retailer(tmp_path: Path) -> None:
    by_offer = _truth(tmp_path, {"offer_id": ["a|p1"], "true_category_id": ["2"]})
    assert by_offer.rows() == [("a|p1", 2, "a|p1")]  # without cluster_id, each offer is its own cluster
    by_retailer = _truth(tmp_path, {"product_id": ["p1"], "retailer": ["b"], "true_category_id": [2]})
    assert by_retailer.get_column("offer_id").to_list() == ["b|p1"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"product_id": ["p1"]}, "missing column 'true_category_id'"),
        ({"title": ["x"], "true_category_id": [2]}, "missing column 'product_id'"),
        ({"product_id": ["p1", "p2"], "true_category_id": ["2", "Peppers"]}, "row 2: true_category_id 'Peppers'"),
    ],
)
def test_a_bad_truth_file_names_the_column_or_row(tmp_path: Path, rows: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _truth(tmp_path, rows)


def test_the_command_says_in_one_line_when_there_is_no_run(tmp_path: Path, capsys) -> None:
    from seestocks_rank.cli import EXIT_INPUT, main

    truth = tmp_path / "truth.csv"
    truth.write_text("product_id,true_category_id\np1,2\n")
    assert main(["--data-dir", str(tmp_path / "empty"), "score", "--truth", str(truth)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no published run" in err[0]


def test_a_single_signal_orders_each_page_alone_with_missing_values_last() -> None:
    candidates = pl.DataFrame(
        {
            "category_id": [1, 1, 1, 2, 2],
            "offer_id": ["a", "b", "c", "d", "e"],
            "retailer": ["r"] * 5,
            "centroid_cosine": [0.2, None, 0.9, 0.5, 0.5],
            "taxonomy_distance": [2, 0, 1, 0, 0],
        }
    )
    by_cosine = single_signal_pages(candidates, "centroid_cosine", higher_first=True)
    assert by_cosine.filter(pl.col("category_id") == 1).get_column("offer_id").to_list() == ["c", "a", "b"]
    assert by_cosine.filter(pl.col("category_id") == 2).get_column("rank").to_list() == [1, 2]  # ties by id
    by_distance = single_signal_pages(candidates, "taxonomy_distance", higher_first=False)
    assert by_distance.filter(pl.col("category_id") == 1).get_column("offer_id").to_list() == ["b", "c", "a"]
