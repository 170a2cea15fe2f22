import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.relevance import evaluate, load_eval_judgments, ranked, ranking_metrics


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def _judgments() -> pl.DataFrame:
    # q1: 3 products (shallow); q2: 12 products (deep)
    rows = [("q1", "a", 3.0), ("q1", "b", 1.0), ("q1", "c", 2.0)]
    rows += [("q2", f"p{i:02d}", g) for i, g in enumerate([1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2])]
    return pl.DataFrame(rows, schema=["query_id", "product_id", "grade"], orient="row")


def test_ndcg_relevant_and_bad_pages_against_hand_computed_values():
    j = _judgments()
    # scores: q1 ranked b, a, c; q2 ranked in product order
    scores = np.array([2.0, 3.0, 1.0] + [float(12 - i) for i in range(12)])
    metrics = ranking_metrics(ranked(j, scores), k=10, relevant_min=2.5, irrelevant_max=1.0, grade_floor=1.0)
    # q1: gains 2^(g-1)-1 -> a=3, b=0, c=1; order b, a, c; ideal a, c, b
    ndcg_q1 = _dcg([0, 3, 1]) / _dcg([3, 1, 0])
    # q2: top 10 are p00..p09 -> gains [0,0,3,0,...]; ideal [3,1,0,...]
    ndcg_q2 = _dcg([0, 0, 3] + [0] * 7) / _dcg([3, 1])
    assert metrics["all"]["ndcg@10"] == pytest.approx(round((ndcg_q1 + ndcg_q2) / 2, 4))
    assert metrics["deep"]["ndcg@10"] == pytest.approx(round(ndcg_q2, 4))
    assert metrics["deep"]["queries"] == 1 and metrics["all"]["judgments"] == 15
    # relevant@10: q1 1 of 3 shown, q2 1 of 10 shown
    assert metrics["all"]["relevant@10"] == pytest.approx(round((1 / 3 + 1 / 10) / 2, 4))
    # both queries have a bad (grade 1) and a relevant (3) product, and show a bad one
    assert metrics["all"]["bad_pages@10"] == 1.0


def test_bad_pages_counts_only_queries_with_both_kinds_and_ideal_order_is_clean():
    j = _judgments()
    perfect = ranking_metrics(ranked(j, j["grade"]), k=2, relevant_min=2.5, irrelevant_max=1.0, grade_floor=1.0)
    assert perfect["all"]["ndcg@2"] == 1.0
    # q1's top 2 by grade: a(3), c(2): no bad product; q2's: p02(3), p11(2): none either
    assert perfect["all"]["bad_pages@2"] == 0.0
    assert perfect["all"]["queries_with_bad_and_relevant"] == 2


def test_ties_are_broken_by_product_id():
    j = pl.DataFrame({"query_id": ["q"] * 3, "product_id": ["c", "a", "b"], "grade": [1.0, 2.0, 3.0]})
    r = ranked(j, np.zeros(3))
    assert r["product_id"].to_list() == ["a", "b", "c"]


def test_load_eval_judgments_names_missing_columns_and_bad_rows(tmp_path: Path):
    f = tmp_path / "j.csv"
    f.write_text("query_id,query,product_id,title\n1,x,p,t\n")
    with pytest.raises(ValueError, match="grade"):
        load_eval_judgments(f)
    f.write_text("query_id,query,product_id,title,grade,price\n1,x,p,t,2,3.5\n1,x,q,t2,high,1\n")
    with pytest.raises(ValueError, match="row 1 .*grade"):
        load_eval_judgments(f)


def test_evaluate_compares_rankers_deterministically(hashing_encoder):
    j = pl.DataFrame(
        {
            "query_id": ["1"] * 4 + ["2"] * 4,
            "query": ["red peppers"] * 4 + ["tool bag"] * 4,
            "product_id": list("abcdefgh"),
            "title": [
                "red peppers 1 kg",
                "hot sauce",
                "green peppers",
                "tool bag",
                "canvas tool bag",
                "backpack",
                "tool belt bag",
                "red peppers",
            ],
            "grade": [3.0, 0.0, 2.0, 0.0, 3.0, 1.0, 2.0, 0.0],
            "price": [2.0, 1.0, 3.0, 20.0, 30.0, 25.0, 15.0, 2.0],
        }
    )
    first = evaluate(j, hashing_encoder, None)
    second = evaluate(j, hashing_encoder, None)
    assert first == second
    names = set(first["rankers"])
    assert {"random", "price_ascending", "bm25", "bi_encoder", "oracle"} <= names
    assert first["rankers"]["oracle"]["all"]["ndcg@10"] == 1.0
    assert first["rankers"]["bm25"]["all"]["ndcg@10"] > first["rankers"]["price_ascending"]["all"]["ndcg@10"]
    assert first["relevant_min"] == 2.25 and first["irrelevant_max"] == 0.75
