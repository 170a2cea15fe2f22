import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seestocks_rank.evaluation.harness import evaluate
from seestocks_rank.evaluation.metrics import (
    grade_thresholds,
    per_query_metrics,
    ranked,
    ranking_metrics,
    selection_contributions,
    selection_score,
    summarize_metrics,
)
from seestocks_rank.evaluation.selection import LinearBlend, train_fusion_ranker
from seestocks_rank.evaluation.statistics import (
    choose_within_one_standard_error,
    paired_differences,
    paired_standard_error,
)
from seestocks_rank.inputs.judgments import load_query_judgments


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


def test_load_query_judgments_names_missing_columns_and_bad_rows(tmp_path: Path):
    f = tmp_path / "j.csv"
    f.write_text("query_id,query,product_id,title\n1,x,p,t\n")
    with pytest.raises(ValueError, match="grade"):
        load_query_judgments(f)
    f.write_text("query_id,query,product_id,title,grade,price\n1,x,p,t,2,3.5\n1,x,q,t2,high,1\n")
    with pytest.raises(ValueError, match="row 1 .*grade"):
        load_query_judgments(f)


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


def _tie_judgments(pairs: int = 1) -> pl.DataFrame:
    """Deep queries where signal ``a`` shows a bad product (grade 1) at rank 10 of a mixed query ("m")
    and signal ``b`` shows one at rank 10 of a query without relevant products ("n"), whose gains
    are the mixed query's halved: both signals lose the same NDCG@10, but only ``a`` shows a bad page.

    Products at ranks 1-9 and 12 score the same on both signals; ``a + w * b`` follows ``b`` at
    ranks 10-11 for w > 1/1.3."""
    rows = []
    top, neutral = (3.0, 2.0), (1 + math.log2(2.5), 1 + math.log2(1.5))  # gains (3, 1) and (1.5, 0.5)
    for p in range(pairs):
        for kind, (best, middle) in (("m", top), ("n", neutral)):
            q = f"{kind}{p}"
            grades = [best] + [middle] * 8 + [1.0, middle, middle]  # ranks 1-9, bad, neutral, rank 12
            for r, g in enumerate(grades, start=1):
                pair_a = {10: 895.5, 11: 894.5} if kind == "m" else {10: 894.5, 11: 895.5}
                pair_b = {10: 894.5, 11: 895.8} if kind == "m" else {10: 895.8, 11: 894.5}
                a = pair_a.get(r, 1000.0 - 10 * r)
                b = pair_b.get(r, 1000.0 - 10 * r)
                rows.append((q, f"{q}-{r:02d}", g, a, b))
    return pl.DataFrame(rows, schema=["query_id", "product_id", "grade", "a_z", "b_z"], orient="row")


def test_selection_objective_avoids_bad_products_when_ndcg_ties():
    j = _tie_judgments()
    thresholds = {"relevant_min": 2.5, "irrelevant_max": 1.49}
    by_ndcg = LinearBlend.fit(j, ["a_z", "b_z"], **thresholds)
    by_selection = LinearBlend.fit(j, ["a_z", "b_z"], objective="selection", **thresholds)

    def metrics(model: LinearBlend) -> dict:
        return ranking_metrics(ranked(j, model.predict(j)["score"]), **thresholds, grade_floor=1.0)

    m_ndcg, m_selection = metrics(by_ndcg), metrics(by_selection)
    # the same NDCG@10 on all and on deep queries (both are deep) ...
    assert m_ndcg["all"]["ndcg@10"] == m_selection["all"]["ndcg@10"] < 1.0
    assert m_ndcg["deep"]["ndcg@10"] == m_selection["deep"]["ndcg@10"]
    # ... so the NDCG fit keeps its first weights, while the selection fit moves off the bad page
    assert by_ndcg.weights == [1.0, 0.0]
    assert m_ndcg["deep"]["bad_pages@10"] == 1.0 and m_ndcg["deep"]["queries_with_bad_and_relevant"] == 1
    assert m_selection["deep"]["bad_pages@10"] == 0.0
    assert selection_score(m_selection) == pytest.approx(selection_score(m_ndcg) + 1.0)
    with pytest.raises(ValueError, match="objective"):
        LinearBlend.fit(j, ["a_z"], objective="map")


def test_fusion_selection_prefers_the_blend_without_bad_pages_and_is_deterministic():
    j = _tie_judgments(pairs=6).rename({"a_z": "cross_encoder_z", "b_z": "bm25_z"})
    thresholds = {"relevant_min": 2.5, "irrelevant_max": 1.49}
    model, selection = train_fusion_ranker(j, ["cross_encoder_z", "bm25_z"], **thresholds, seed=0)
    held_out = selection["held_out"]
    assert list(held_out) == ["cross_encoder_only", "linear_blend", "linear_blend_selection", "lightgbm"]
    assert selection["held_out_queries"] == 12 and selection["held_out_deep_queries_with_bad_and_relevant"] == 6
    # the cross-encoder alone shows the bad product on every mixed page; the chosen blend on none
    assert held_out["cross_encoder_only"]["bad_pages@10.deep"] == 1.0
    chosen = selection["chosen"]
    assert chosen == "linear_blend_selection"
    assert held_out[chosen]["bad_pages@10.deep"] == 0.0
    assert held_out[chosen]["score"] == max(m["score"] for m in held_out.values())
    assert held_out[chosen]["score"] >= held_out["cross_encoder_only"]["score"]
    refit = ranking_metrics(ranked(j, model.predict(j)["score"]), **thresholds, grade_floor=1.0)
    assert refit["deep"]["bad_pages@10"] == 0.0
    again_model, again = train_fusion_ranker(j, ["cross_encoder_z", "bm25_z"], **thresholds, seed=0)
    assert again == selection and again_model.version == model.version


def test_fusion_selection_ties_go_to_the_simpler_candidate():
    # both signals are the grades: every candidate ranks every query ideally, so all tie
    j = _tie_judgments(pairs=4).with_columns(pl.col("grade").alias("cross_encoder_z"), pl.col("grade").alias("bm25_z"))
    model, selection = train_fusion_ranker(j, ["bm25_z", "cross_encoder_z"], seed=0)
    assert selection["chosen"] == "cross_encoder_only"
    assert isinstance(model, LinearBlend) and model.features == ["cross_encoder_z"]
    assert selection["relevant_min"] == 2.5 and selection["irrelevant_max"] == 1.5  # grade 1-3 quarters


def test_grade_thresholds_default_to_the_range_quarters():
    assert grade_thresholds(pl.Series([1.0, 3.0])) == (2.5, 1.5)
    assert grade_thresholds(pl.Series([0.0, 2.0, 3.0])) == (2.25, 0.75)
    assert grade_thresholds(pl.Series([0.0, 3.0]), 2.0, 0.0) == (2.0, 0.0)


def test_selection_contributions_add_up_to_the_selection_score():
    j = _tie_judgments(pairs=3).vstack(
        pl.DataFrame(
            {
                "query_id": ["short"] * 3,
                "product_id": ["s1", "s2", "s3"],
                "grade": [3.0, 1.0, 2.0],
                "a_z": [1.0, 3.0, 2.0],
                "b_z": [0.0, 0.0, 0.0],
            }
        )
    )
    thresholds = {"relevant_min": 2.5, "irrelevant_max": 1.49, "grade_floor": 1.0}
    for column in ("a_z", "b_z"):
        per_query = per_query_metrics(ranked(j, j[column]), **thresholds)
        assert per_query["query_id"].to_list() == sorted(per_query["query_id"].to_list())
        metrics = summarize_metrics(per_query)
        assert metrics == ranking_metrics(ranked(j, j[column]), **thresholds)
        assert selection_contributions(per_query).sum() == pytest.approx(selection_score(metrics), abs=2e-4)


def test_paired_standard_error_by_hand():
    a = np.array([1.0, 0.0, 0.5, 0.5])
    b = np.array([0.0, 0.0, 0.5, 0.0])
    # differences 1, 0, 0, 0.5: mean 0.375, sample sd sqrt(0.6875 / 3)
    assert paired_standard_error(a, b) == pytest.approx(2.0 * np.sqrt(0.6875 / 3))
    assert paired_standard_error(a, a) == 0.0
    assert paired_standard_error(a[:1], b[:1]) == 0.0


def test_one_standard_error_rule_keeps_the_simpler_candidate_unless_the_lead_is_clear():
    rng = np.random.default_rng(0)
    simple = rng.normal(0.0, 0.01, 400)
    noise = rng.normal(0.0, 0.01, 400)
    noisy_lead = simple + noise - noise.mean() + 0.00002  # ahead by 0.008 in sum; sd of that sum ~0.2
    clear_lead = simple + 0.001  # ahead by 0.4 in sum, no spread
    contributions = {"simple": simple, "complex": noisy_lead}
    scores = {name: round(float(c.sum()), 4) for name, c in contributions.items()}
    chosen, best, se = choose_within_one_standard_error(scores, contributions)
    assert (chosen, best) == ("simple", "complex") and se["complex"] == 0.0 and se["simple"] > 0.1
    contributions = {"simple": simple, "complex": clear_lead}
    scores = {name: round(float(c.sum()), 4) for name, c in contributions.items()}
    assert choose_within_one_standard_error(scores, contributions)[:2] == ("complex", "complex")
    # ties go to the simpler candidate
    tied = {"simple": simple, "complex": simple.copy()}
    assert choose_within_one_standard_error({"simple": 1.0, "complex": 1.0}, tied)[:2] == ("simple", "simple")


def test_paired_differences_by_hand():
    j = _tie_judgments(pairs=2)  # four deep queries, two of them mixed
    thresholds = {"relevant_min": 2.5, "irrelevant_max": 1.49, "grade_floor": 1.0}
    a = per_query_metrics(ranked(j, j["a_z"]), **thresholds)
    b = per_query_metrics(ranked(j, j["b_z"]), **thresholds)
    paired = paired_differences(a, b)
    # a shows the bad product on both mixed pages, b on neither
    assert paired["bad_pages@10.deep"] == {"difference": 1.0, "standard_error": 0.0}
    assert paired["deep_pages_only_a_clean"] == 0 and paired["deep_pages_only_b_clean"] == 2
    ndcg_diff = (a["ndcg"] - b["ndcg"]).to_numpy()
    assert paired["ndcg@10"]["difference"] == pytest.approx(ndcg_diff.mean(), abs=1e-4)
    assert paired["ndcg@10"]["standard_error"] == pytest.approx(ndcg_diff.std(ddof=1) / 2.0, abs=1e-4)
    assert paired["ndcg@10.deep"] == paired["ndcg@10"]  # every query is deep
    assert paired_differences(a, a)["bad_pages@10.deep"] == {"difference": 0.0, "standard_error": 0.0}
