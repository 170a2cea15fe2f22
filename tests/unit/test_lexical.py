import math

import polars as pl
import pytest

from seestocks_rank.models.lexical import bm25_scores, term_coverage, tokens


def test_tokens_lowercase_and_strip_plurals():
    out = pl.select(tokens(pl.lit("Red Bell PEPPERS, bags & Glass")).alias("t")).item().to_list()
    assert out == ["red", "bell", "pepper", "bag", "glass"]


def test_tokens_of_any_language_fold_accents_and_keep_every_script():
    out = pl.select(tokens(pl.lit("Jamón IBÉRICO de bellota, Pimientos del Piquillo; Молоко 1 л")).alias("t")).item()
    assert out.to_list() == ["jamon", "iberico", "de", "bellota", "pimiento", "del", "piquillo", "молоко", "1", "л"]


def test_a_spanish_page_and_its_products_share_their_words():
    df = pl.DataFrame(
        {"q": ["Aceites de oliva", "Café molido"], "t": ["Aceite de oliva virgen extra", "CAFE MOLIDO natural"]}
    )
    assert df.select(term_coverage(pl.col("q"), pl.col("t"))).to_series().to_list() == [1.0, 1.0]


def test_term_coverage_is_the_share_of_query_words_in_the_title():
    df = pl.DataFrame({"q": ["tool bags", "hot sauce", "x"], "t": ["Canvas Tool Bag", "Hot pepper", "y"]})
    assert df.select(term_coverage(pl.col("q"), pl.col("t"))).to_series().to_list() == [1.0, 0.5, 0.0]


def test_bm25_matches_a_hand_computation():
    df = pl.DataFrame(
        {
            "query": ["red peppers", "red peppers", "tool bag"],
            "title": ["Red Bell Peppers 500 g", "Hot sauce red", "Canvas Tool Bags"],
        }
    )
    scores = bm25_scores(df).to_list()
    # 3 documents of 5, 3 and 3 tokens; k1 = 1.2, b = 0.75
    avg = 11 / 3

    def term(df_t: int, tf: int, length: int) -> float:
        idf = math.log((3 - df_t + 0.5) / (df_t + 0.5) + 1)
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg))

    assert scores[0] == pytest.approx(term(2, 1, 5) + term(1, 1, 5), rel=1e-5)
    assert scores[1] == pytest.approx(term(2, 1, 3), rel=1e-5)
    assert scores[2] == pytest.approx(2 * term(1, 1, 3), rel=1e-5)


def test_bm25_is_zero_without_shared_terms():
    df = pl.DataFrame({"query": ["laptop"], "title": ["garden hose"]})
    assert bm25_scores(df).to_list() == [0.0]
