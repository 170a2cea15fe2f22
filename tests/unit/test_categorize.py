"""Tests for seestocks_rank.categorize: prototypes, the beam tree walk, sibling disambiguation, the filter."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.categorize import (
    PREDICTION_COLUMNS,
    categorize,
    children_table,
    node_prompts,
    node_prototypes,
    predict_categories,
)
from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.reranking.neighbours import neighbour_vote
from seestocks_rank.reranking.out_of_category import (
    OutOfCategoryConfig,
    OutOfCategoryFilter,
    centroid_margin,
    out_of_category,
)
from seestocks_rank.reranking.siblings import SiblingDisambiguator

TREE = Taxonomy.from_text("1 - A\n2 - A > A1\n3 - A > A2\n4 - B\n5 - B > B1\n")


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_children_table_lists_children_and_roots() -> None:
    table = children_table(TREE)
    assert table.shape == (6, 2)
    assert sorted(TREE.ids[table[5][table[5] >= 0]].tolist()) == [1, 4]  # virtual root row
    assert sorted(TREE.ids[table[0][table[0] >= 0]].tolist()) == [2, 3]
    assert (table[1] == -1).all()  # A1 is a leaf


def test_node_prompts() -> None:
    assert node_prompts(TREE)[1] == "A1. A > A1"


def test_walk_reaches_a_leaf_level_by_level() -> None:
    protos = np.eye(5, dtype=np.float32)  # A, A1, A2, B, B1 in file order
    x = _unit([0.6, 0.0, 0.8, 0.0, 0.0])
    assert categorize(x, TREE, protos).category_id.tolist() == [3]


def test_beam_recovers_what_a_greedy_walk_misses() -> None:
    protos = np.eye(5, dtype=np.float32)
    x = _unit([0.5, 0.0, 0.0, 0.45, 0.75])  # A looks best at the root, but B > B1 is the best path
    assert categorize(x, TREE, protos, beam=1).category_id.tolist() == [1]
    assert categorize(x, TREE, protos, beam=2).category_id.tolist() == [5]


def test_walk_can_stop_at_an_inner_node() -> None:
    protos = np.eye(5, dtype=np.float32)
    x = _unit([1.0, 0.1, 0.1, 0.0, 0.0])
    assert categorize(x, TREE, protos).category_id.tolist() == [1]


def test_prototypes_blend_members_and_keep_prompts_for_empty_nodes() -> None:
    prompts = np.eye(5, dtype=np.float32)
    members = _unit([0, 1, 0, 0, 0], [0, 1, 0.1, 0, 0])
    protos = node_prototypes(TREE, prompts, members, np.array([2, 2]))
    assert protos[1] @ np.eye(5)[1] > 0.9  # A1 from its members (and prompt)
    assert protos[0] @ np.eye(5)[1] > 0.5  # A includes the products below it
    np.testing.assert_allclose(protos[3], prompts[3])  # B has no products: its prompt


SHIRTS = Taxonomy.from_text("1 - Clothing\n2 - Clothing > Shirts\n3 - Clothing > T-Shirts\n")
TITLES = [
    "formal cotton shirt collar",
    "slim formal shirt collar",
    "cotton formal shirt",
    "round neck cotton tshirt printed",
    "printed tshirt round neck",
    "cotton tshirt graphic printed",
]
LABELS = np.array([2, 2, 2, 3, 3, 3])


def test_distinguishing_terms_and_prompts(hashing_encoder) -> None:
    layer = SiblingDisambiguator(SHIRTS, hashing_encoder, TITLES, LABELS, top_terms=3)
    shirts, tshirts = SHIRTS.index_of([2, 3]).tolist()
    a_terms, b_terms = layer.distinguishing_terms(shirts, tshirts)
    assert {"formal", "collar"} <= set(a_terms) and "cotton" not in a_terms
    assert {"printed", "neck"} & set(b_terms) and "cotton" not in b_terms
    prompt_a, prompt_b = layer.prompts(shirts, tshirts)
    assert prompt_a.startswith("Shirts: ") and "formal" in prompt_a
    assert prompt_b.startswith("T-Shirts: ") and "printed" in prompt_b


def test_disambiguation_flips_a_close_sibling_call(hashing_encoder) -> None:
    protos = np.eye(32, dtype=np.float32)[:3]  # Clothing, Shirts, T-Shirts (the encoder's 32 dimensions)
    x = _unit([0.5, 0.52, 0.5] + [0.0] * 29)  # a near tie, leaning towards Shirts
    titles = ["printed round neck tshirt"]
    plain = categorize(x, SHIRTS, protos)
    layer = SiblingDisambiguator(SHIRTS, hashing_encoder, TITLES, LABELS, prompt_weight=0.0, lexical_weight=0.1)
    refined = categorize(x, SHIRTS, protos, titles=titles, disambiguator=layer)
    assert plain.category_id.tolist() == [2]
    assert refined.category_id.tolist() == [3] and refined.disambiguated.tolist() == [True]
    far = SiblingDisambiguator(SHIRTS, hashing_encoder, TITLES, LABELS, margin=0.0, lexical_weight=0.1)
    assert categorize(x, SHIRTS, protos, titles=titles, disambiguator=far).category_id.tolist() == [2]


def test_disambiguator_works_on_a_bare_taxonomy(hashing_encoder) -> None:
    layer = SiblingDisambiguator(SHIRTS, hashing_encoder)  # node names only
    a, b = layer.prompts(*SHIRTS.index_of([2, 3]).tolist())
    assert a.startswith("Shirts") and b.startswith("T-Shirts")


def test_out_of_category_names_the_signal() -> None:
    pairs = pl.DataFrame(
        {
            "neighbour_vote": [0.9, 0.1, 0.35, 0.5, 0.9],
            "predicted_within": [True, True, False, True, True],
            "centroid_margin": [0.1, 0.1, -0.05, 0.1, 0.1],
            "price_z": [0.5, 0.0, 0.0, 9.0, 0.2],
            "visual_vote": [None, None, None, None, 0.0],
        }
    )
    out = out_of_category(pairs)
    assert out["out_of_category"].to_list() == [False, True, True, True, True]
    reasons = out["out_of_category_reason"].to_list()
    assert reasons[0] is None
    assert reasons[1].startswith("title:") and reasons[2].startswith("title:")
    assert reasons[3].startswith("price:") and reasons[4].startswith("visual:")
    assert "visual_vote" not in out_of_category(pairs.drop("visual_vote")).columns


def test_rules_keep_flagged_products_off_the_page_with_the_reason() -> None:
    from seestocks_rank.rules.page_rules import apply_rules

    now = datetime(2026, 1, 1, tzinfo=UTC)
    scored = pl.DataFrame(
        {
            "category_id": [1, 1, 1],
            "offer_id": ["a", "b", "c"],
            "title": ["pepper red", "hot sauce", "pepper green"],
            "retailer": ["x", "y", "z"],
            "price": [2.0, 1.0, 3.0],
            "last_seen": [now] * 3,
            "confidence": [0.9, 0.95, 0.8],
            "out_of_category_reason": [None, "title: 0.1 of similar titles tagged here", None],
        }
    )
    vectors = np.eye(3, dtype=np.float32)
    out = apply_rules(scored, vectors, now).sort("offer_id")
    assert out["status"].to_list() == ["shown", "out_of_category", "shown"]
    assert out["reason"][1].startswith("title:") and out["rank"][1] is None
    assert sorted(out["rank"].drop_nulls().to_list()) == [1, 2]


# ---------------------------------------------------------------------------- pipeline-facing pieces
FOOD = Taxonomy.from_text(
    "1 - Food\n2 - Food > Peppers\n3 - Food > Sauces\n4 - Tools\n5 - Tools > Hammers\n6 - Tools > Tool Bags\n"
)
CATALOG = pl.DataFrame(
    {
        "offer_id": [f"o{i}" for i in range(12)],
        "title": [
            "red bell pepper",
            "green bell pepper",
            "yellow bell pepper",
            "hot chili sauce bottle",  # o3: a sauce tagged Peppers (the mis-tag)
            "hot chili sauce",
            "garlic chili sauce",
            "sweet chili sauce bottle",
            "claw hammer steel",
            "sledge hammer steel",
            "rubber mallet hammer",
            "canvas tool bag",
            "zip tool bag canvas",
        ],
        "category_id": [2, 2, 2, 2, 3, 3, 3, 5, 5, 5, 6, 6],
    }
)


def _catalog_vectors(encoder) -> np.ndarray:
    return encoder.encode(CATALOG.get_column("title").to_list())


def test_predict_categories_covers_the_catalog_and_corrects_a_mistag(hashing_encoder) -> None:
    vectors = _catalog_vectors(hashing_encoder)
    out = predict_categories(CATALOG, vectors, FOOD, hashing_encoder)
    assert out.columns == list(PREDICTION_COLUMNS)
    assert out.get_column("offer_id").equals(CATALOG.get_column("offer_id"))
    assert out.get_column("predicted_category_id").is_in(FOOD.ids.tolist()).all()
    predicted = dict(zip(out["offer_id"], out["predicted_category_id"], strict=True))
    assert predicted["o3"] == 3  # the sauce tagged Peppers is categorized as a sauce
    assert predicted["o0"] == 2 and predicted["o7"] == 5 and predicted["o11"] == 6
    plain = predict_categories(CATALOG, vectors, FOOD, hashing_encoder, disambiguate=False)
    assert not plain.get_column("disambiguated").any()


def test_predict_categories_walks_only_changed_offers_when_given_the_previous_output(hashing_encoder) -> None:
    vectors = _catalog_vectors(hashing_encoder)
    first = predict_categories(CATALOG, vectors, FOOD, hashing_encoder)
    hashing_encoder.calls = 0
    again = predict_categories(CATALOG, vectors, FOOD, hashing_encoder, previous=first)
    assert again.equals(first) and hashing_encoder.calls == 0  # nothing changed: no prompt encoded, no walk
    retagged = CATALOG.with_columns(pl.when(pl.col("offer_id") == "o3").then(5).otherwise(pl.col("category_id"))
                                    .alias("category_id"))  # fmt: skip
    third = predict_categories(retagged, vectors, FOOD, hashing_encoder, previous=first.reverse())
    assert third.get_column("offer_id").equals(CATALOG.get_column("offer_id"))
    changed = third.join(first, on=["offer_id", "content_hash"], how="anti")
    assert changed.get_column("offer_id").to_list() == ["o3"]
    other_model = predict_categories(CATALOG, vectors, FOOD, type(hashing_encoder)(model_version="v9"), previous=first)
    assert other_model.get_column("basis").n_unique() == 1 and other_model["basis"][0] != first["basis"][0]


def test_neighbour_vote_on_a_subset_of_rows_matches_the_full_search(hashing_encoder) -> None:
    vectors = _catalog_vectors(hashing_encoder)
    tags = CATALOG.get_column("category_id").to_numpy()
    rows, pages = np.array([3, 0, 7, 3]), np.array([2, 2, 4, 3])
    full = neighbour_vote(vectors, tags, FOOD, 3)(rows, pages)
    subset = neighbour_vote(vectors, tags, FOOD, 3, rows=rows)(rows, pages)
    np.testing.assert_allclose(subset, full, rtol=1e-6)
    assert full[0] < 0.5 < full[1]  # the sauce's neighbours are tagged Sauces, the pepper's Peppers
    assert full[2] > 0.5  # the hammer's neighbours are mostly under Tools


def test_centroid_margin_against_the_best_unrelated_page() -> None:
    centroid_vectors = _unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0])  # pages: A, A > A1 (related to A), B
    related = np.array([[True, True, False], [True, True, False], [False, False, True]])
    x = _unit([1, 0.2, 0], [0, 1, 0])
    margin = centroid_margin(x, np.array([0, 1, 0]), np.array([0, 0, 2]), centroid_vectors, related)
    np.testing.assert_allclose(margin[0], x[0] @ centroid_vectors[0] - x[0] @ centroid_vectors[2], rtol=1e-6)
    assert margin[0] > 0 and margin[1] < 0 and margin[2] < 0


def test_out_of_category_evidence_flags_the_mistag_with_a_named_signal(hashing_encoder) -> None:
    from seestocks_rank.retrieval.centroids import category_centroids, page_prompt

    vectors = _catalog_vectors(hashing_encoder)
    pages = pl.DataFrame({"category_id": [3, 2, 5, 6]})  # not sorted: the pages are matched by id
    prompts = hashing_encoder.encode([page_prompt(FOOD.path(c)) for c in pages["category_id"]])
    catalog = CATALOG.with_columns(pl.lit(1.0).alias("price"))
    centroids = category_centroids(pages, FOOD, catalog, vectors, prompts)
    predicted = predict_categories(CATALOG, vectors, FOOD, hashing_encoder).get_column("predicted_category_id")
    products = CATALOG.with_columns(predicted.set(pl.Series([False] * 11 + [True]), None))  # o11: no prediction
    pairs = pl.DataFrame(
        {
            "category_id": [2, 2, 2, 5, 6],
            "offer_id": ["o0", "o1", "o3", "o7", "o11"],
            "price_z": [0.0, 9.0, 0.0, 0.0, 0.0],
        }
    )
    images = np.eye(4, dtype=np.float32)[[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3]]  # one look per category
    has_image = np.ones(12, dtype=bool)
    has_image[0] = False
    config = OutOfCategoryConfig(neighbours=3)
    catalog_context = CatalogContext(products, vectors, FOOD, image_vectors=images, image_ok=has_image)
    signals = OutOfCategoryFilter(catalog_context, config).evidence(pairs, centroids)
    assert signals.columns == [
        *pairs.columns, "centroid_margin", "predicted_category_id", "predicted_within", "neighbour_vote", "visual_vote"
    ]  # fmt: skip
    assert signals.get_column("offer_id").equals(pairs.get_column("offer_id"))
    assert signals["predicted_within"].to_list()[:3] == [True, True, False]
    assert signals["predicted_within"][4] is None  # no prediction: no verdict
    assert signals["visual_vote"][0] is None and signals["visual_vote"][2] == pytest.approx(0.0)
    flags = out_of_category(signals)
    reasons = flags.get_column("out_of_category_reason").to_list()
    assert reasons[0] is None and reasons[3] is None and reasons[4] is None
    assert reasons[1] is None  # an odd price alone does not flag a pepper its neighbours vote for
    assert reasons[2].startswith("title:")  # the sauce tagged Peppers
    text_only = OutOfCategoryFilter(CatalogContext(products, vectors, FOOD), config).evidence(pairs, centroids)
    assert "visual_vote" not in text_only.columns
    # images whose neighbours ignore the tags (each product its own look, all equally close) fail the
    # self-check: they would flag correctly tagged products, so the visual vote is left out
    noise = np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32)
    noisy = OutOfCategoryFilter(
        CatalogContext(products, vectors, FOOD, image_vectors=noise, image_ok=has_image), config
    )
    assert noisy.visual_check()["visual_used"] is False
    assert noisy.visual_check()["visual_self_flag"] > noisy.visual_check()["title_self_flag"] + config.visual_slack
    assert "visual_vote" not in noisy.evidence(pairs, centroids).columns
    assert OutOfCategoryFilter(catalog_context, config).visual_check()["visual_used"] is True
    with pytest.raises(ValueError, match="page without a centroid row"):
        OutOfCategoryFilter(catalog_context).evidence(pairs.with_columns(pl.lit(1).alias("category_id")), centroids)


def test_distinguishing_terms_in_spanish_fold_accents(hashing_encoder) -> None:
    taxonomy = Taxonomy.from_text("1 - Alimentación\n2 - Alimentación > Jamón\n3 - Alimentación > Embutidos\n")
    titles = ["Jamón ibérico de bellota", "jamon iberico loncheado", "Chorizo ibérico picante", "Salchichón ibérico"]
    layer = SiblingDisambiguator(taxonomy, hashing_encoder, titles, np.array([2, 2, 3, 3]), top_terms=3)
    jamon, embutidos = taxonomy.index_of([2, 3]).tolist()
    a_terms, b_terms = layer.distinguishing_terms(jamon, embutidos)
    assert "jamon" in a_terms and "iberico" not in a_terms + b_terms  # both pages' word says nothing
    assert {"chorizo", "salchichon"} & set(b_terms)
