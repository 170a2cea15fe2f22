"""The learned offer matcher and its use in the rules: pair files, the cascade, incremental scoring, and the
retailer condition (one retailer's variants are never merged)."""

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.rules.dedup import lexical_pair_features
from seestocks_rank.rules.offer_matching import accept_links, match_offers, score_offer_pairs
from seestocks_rank.rules.page_rules import SHOWN, apply_rules
from seestocks_rank.rules.pair_model import PairModel, offer_text, pair_sides, read_matching_pairs


class OverlapEncoder:
    """A stand-in cross-encoder: the logit is the word overlap of the two texts; it records what it scores."""

    version = "overlap-v1"

    def __init__(self) -> None:
        self.scored: list[tuple[str, str]] = []

    def train(self, left, right, labels, **_):  # noqa: ANN001, ANN201
        return SimpleNamespace(epochs=1.0, seconds=0.0, pairs_per_second=0.0)

    def score(self, left: list[str], right: list[str], **_) -> np.ndarray:
        self.scored += list(zip(left, right, strict=True))
        words = [(set(a.lower().split()), set(b.lower().split())) for a, b in zip(left, right, strict=True)]
        return np.array([10 * len(a & b) / max(len(a | b), 1) - 5 for a, b in words], dtype=np.float32)


def _pairs(n: int = 200, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    brands = ["Sony", "Bosch", "Hacendado", "Señorío", "Jabra", "Makita"]
    nouns = ["aceite de oliva", "jamón ibérico", "taladro", "auriculares", "televisor", "café molido"]
    rows = []
    for k in range(n):
        brand, noun, size = brands[k % 6], nouns[(k // 6) % 6], int(rng.integers(1, 900))
        title = f"{brand} {noun} {size} ml"
        if k % 2 == 0:  # same product, reworded by another shop
            other, label = f"{noun.upper()} {brand} {size}ml", 1
        else:  # another product of the same brand
            other, label = f"{brand} {nouns[(k // 6 + 1) % 6]} {size + 7} ml", 0
        rows.append((title, "", 10.0 + k % 7, other, "", 10.5 + k % 7, label))
    return pl.DataFrame(
        rows, schema=["title_a", "brand_a", "price_a", "title_b", "brand_b", "price_b", "label"], orient="row"
    )


def test_offer_text_is_language_neutral_and_names_the_brand_once() -> None:
    df = pl.DataFrame(
        {"title": ["Jamón ibérico 100 g", "Aceite de oliva 0,4º Hacendado"], "brand": ["Señorío", "Hacendado"],
         "price": [4.95, 22.5]}
    )  # fmt: skip
    texts = df.select(offer_text(pl.col("title"), pl.col("brand"), pl.col("price"))).to_series().to_list()
    assert texts == ["Jamón ibérico 100 g | Señorío | 4.95", "Aceite de oliva 0,4º Hacendado | 22.5"]


def test_lexical_features_read_accented_words() -> None:
    same = lexical_pair_features(pl.Series(["Jamón ibérico 100g"]), None, pl.Series(["jamón IBÉRICO 100g"]), None)
    assert same[0, 0] == 1.0  # token jaccard: "jamón" is one word, not "jam" + "n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title_a,title_b\nx,y\n", "missing column(s) label"),
        ("title_a,title_b,label\nx,y,1\nx,y,yes\n", "field label must be 0 or 1 (row 3)"),
        ("title_a,title_b,label\nx,,1\n", "field title_b is empty (row 2)"),
        ("title_a,title_b,price_a,label\nx,y,cheap,0\n", "field price_a is not a number (row 2)"),
    ],
)
def test_matching_pairs_errors_name_the_row_and_field(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_matching_pairs(path)


def test_matching_pairs_read(tmp_path) -> None:
    path = tmp_path / "pairs.csv"
    _pairs(20).write_csv(path)
    pairs = read_matching_pairs(path)
    assert pairs.height == 20 and pairs.schema["label"] == pl.Int8 and pairs.schema["price_a"] == pl.Float64


def test_cascade_screens_plain_non_matches_before_the_cross_encoder() -> None:
    encoder = OverlapEncoder()
    model = PairModel.train(_pairs(400), budget_seconds=1, stack_share=0.5, cross_encoder=encoder)
    assert model.screen is not None and model.stack is not None and 0 < model.threshold < 1
    assert model.report["screen_pass_share"] <= 1.0
    test = _pairs(100, seed=1)
    encoder.scored.clear()
    proba = model.proba(test)
    labels = test.get_column("label").to_numpy().astype(bool)
    predicted = proba >= model.threshold
    assert (predicted & labels).sum() / max(predicted.sum(), 1) > 0.9  # precision
    assert (predicted & labels).sum() / labels.sum() > 0.9  # recall
    # a pair the screen drops is never read by the cross-encoder, and gets probability 0
    unrelated = pl.DataFrame(
        {"title_a": ["Sony televisor 55"], "price_a": [499.0], "title_b": ["Hacendado café molido 250 g"],
         "price_b": [2.1]}
    )  # fmt: skip
    encoder.scored.clear()
    if model.screen.predict(model._lexical(pair_sides(unrelated, "a"), pair_sides(unrelated, "b"))) < model.screen_cut:
        assert model.proba(unrelated)[0] == 0.0 and encoder.scored == []


def test_saved_matcher_loads_with_its_cascade(tmp_path, monkeypatch) -> None:
    model = PairModel.train(_pairs(200), budget_seconds=1, stack_share=0.5, cross_encoder=OverlapEncoder())
    model.cross_encoder.save = lambda folder: folder.mkdir()  # the stand-in has nothing to save
    model.save(tmp_path / "matcher")
    from seestocks_rank.models import cross_encoder as ce

    monkeypatch.setattr(ce.CrossEncoder, "load", classmethod(lambda cls, *a, **k: OverlapEncoder()))
    loaded = PairModel.load(tmp_path / "matcher")
    test = _pairs(50, seed=2)
    assert loaded.version == model.version and loaded.threshold == model.threshold
    np.testing.assert_allclose(loaded.proba(test), model.proba(test))


class CountingModel:
    """A stand-in matcher: probability from the word overlap of the titles; counts the pairs it scores."""

    threshold = 0.5

    def __init__(self, version: str = "m1") -> None:
        self.version, self.scored = version, 0

    def proba(self, pairs: pl.DataFrame) -> np.ndarray:
        self.scored += pairs.height
        a = pairs.get_column("title_a").str.to_lowercase().str.split(" ")
        b = pairs.get_column("title_b").str.to_lowercase().str.split(" ")
        frame = pl.DataFrame({"a": a, "b": b})
        return (
            frame.select(pl.col("a").list.set_intersection("b").list.len() / pl.col("a").list.set_union("b").list.len())
            .to_series()
            .to_numpy()
        )


def _offers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "offer_id": ["A|1", "B|1", "C|1", "A|2", "B|2"],
            "title": ["Bosch taladro 500 W", "bosch TALADRO 500 w", "Taladro Bosch 500W", "Jabra auriculares", "x"],
            "retailer": ["A", "B", "C", "A", "B"],
            "price": [50.0, 48.0, 52.0, 30.0, 9.0],
        }
    )


def test_pair_scores_are_reused_until_an_offer_or_the_model_changes() -> None:
    offers = _offers()
    i, j = np.array([0, 0, 1, 3]), np.array([1, 2, 2, 4])
    model = CountingModel()
    first, fresh = score_offer_pairs(model, offers, i, j)
    assert fresh == 4 and model.scored == 4
    again, fresh = score_offer_pairs(model, offers, i, j, first.reverse())  # any order of the saved scores
    assert fresh == 0 and model.scored == 4 and again.equals(first)
    edited = offers.with_columns(pl.when(pl.col("offer_id") == "C|1").then(pl.lit("Taladro Bosch 600W"))
                                 .otherwise(pl.col("title")).alias("title"))  # fmt: skip
    _, fresh = score_offer_pairs(model, edited, i, j, first)
    assert fresh == 2  # the two pairs touching C|1
    _, fresh = score_offer_pairs(CountingModel("m2"), offers, i, j, first)
    assert fresh == 4


def test_only_offers_of_different_retailers_are_paired() -> None:
    offers = pl.DataFrame(
        {
            "offer_id": ["S|1", "S|2", "T|1"],
            "title": ["Aceite de oliva 0,4º Hacendado 1 L", "Aceite de oliva 0,4º Hacendado 5 L", "Aceite oliva 1 L"],
            "retailer": ["S", "S", "T"],
            "price": [4.95, 22.95, 5.10],
        }
    )
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.99, 0.141]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs, counts = match_offers(offers, vectors, None, rule_min_cosine=0.5)
    assert counts["matcher_version"] == "rule"
    assert set(zip(pairs["offer_a"], pairs["offer_b"], strict=True)) == {("S|1", "T|1"), ("S|2", "T|1")}
    scored, _ = match_offers(offers, vectors, CountingModel(), min_cosine=0.5)
    assert ("S|1", "S|2") not in set(zip(scored["offer_a"], scored["offer_b"], strict=True))


def test_rules_merge_linked_offers_of_other_retailers_and_keep_the_cheapest() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    scored = pl.DataFrame(
        {
            "category_id": [1, 1, 1, 1, 2],
            "offer_id": ["A|1", "B|1", "A|2", "C|9", "B|1"],
            "title": ["taladro 500", "taladro 500", "taladro 600", "cable", "taladro 500"],
            "retailer": ["A", "B", "A", "C", "B"],
            "price": [50.0, 45.0, 60.0, 5.0, 45.0],
            "last_seen": [now] * 5,
            "confidence": [0.9, 0.8, 0.85, 0.7, 0.9],
        }
    )
    # A|1 ~ B|1 (other shops); B|1 ~ A|2 would chain A's two variants into one product: not linked
    pairs = pl.DataFrame({"offer_a": ["A|1", "A|2"], "offer_b": ["B|1", "B|1"], "probability": [0.95, 0.7]})
    linked = accept_links(np.array([0, 2]), np.array([1, 1]), pairs["probability"].to_numpy(), 0.5,
                          np.array(["A", "B", "A"]))  # fmt: skip
    assert linked.tolist() == [True, False]
    ranked = apply_rules(scored, np.eye(5, 4, dtype=np.float32), now, links=pairs.filter(pl.Series(linked)))
    page = ranked.filter(pl.col("category_id") == 1)
    status = dict(zip(page["offer_id"], page["status"], strict=True))
    assert status["A|1"] == "duplicate" and status["B|1"] == SHOWN  # the cheaper B|1 is shown
    assert page.filter(pl.col("offer_id") == "A|1")["duplicate_of"].item() == "B|1"
    assert status["A|2"] == SHOWN  # A's other variant is not a duplicate of A|1
    assert ranked.filter(pl.col("category_id") == 2)["status"].item() == SHOWN


def test_links_never_join_two_offers_of_one_retailer() -> None:
    # a chain A1 - B - A2 - C: the stronger A1 ~ B wins, A2 then links to C only
    i, j = np.array([0, 1, 2]), np.array([1, 2, 3])
    linked = accept_links(i, j, np.array([0.9, 0.8, 0.85]), 0.5, np.array(["A", "B", "A", "C"]))
    assert linked.tolist() == [True, False, True]
    below = accept_links(i, j, np.array([0.4, 0.3, 0.2]), 0.5, np.array(["A", "B", "A", "C"]))
    assert not below.any()
