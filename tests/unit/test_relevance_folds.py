"""k-fold out-of-fold cross-encoder training, end to end on a tiny random-initialised BERT (no weights to load)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from seestocks_rank.evaluation import training  # noqa: E402
from seestocks_rank.evaluation.harness import RelevanceModels, evaluate  # noqa: E402
from seestocks_rank.evaluation.training import train_fusion_models, train_relevance_models  # noqa: E402
from seestocks_rank.models import cross_encoder as cross_encoder_module  # noqa: E402
from seestocks_rank.models.cross_encoder import CrossEncoder, CrossEncoderEnsemble  # noqa: E402
from seestocks_rank.splits import query_folds  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUERIES = ["red peppers", "tool bag", "garden hose", "led bulb", "door lock", "white paint", "oak floor", "copper pipe"]


def _judgments() -> pl.DataFrame:
    """8 queries x 6 products: two relevant (grade 3), two partial (2), two from other queries (1)."""
    rows = []
    for q, query in enumerate(QUERIES):
        first, last = query.split()
        other = QUERIES[(q + 3) % len(QUERIES)]
        titles = [
            (f"{query} deluxe", 3.0),
            (f"{query} 2 pack", 3.0),
            (f"{first} kit", 2.0),
            (f"{last} set", 2.0),
            (f"{other} deluxe", 1.0),
            (f"{other} kit", 1.0),
        ]
        rows += [(f"q{q}", query, f"q{q}-p{i}", title, grade) for i, (title, grade) in enumerate(titles)]
    return pl.DataFrame(rows, schema=["query_id", "query", "product_id", "title", "grade"], orient="row")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT saved like a Hugging Face model folder, for ``CrossEncoder.from_pretrained``."""
    folder = tmp_path_factory.mktemp("tiny_base")
    words = sorted({w for text in QUERIES + ["deluxe", "2 pack", "kit", "set"] for w in text.split()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch, tiny_base: Path) -> dict[str, list]:
    """Trains on the tiny base; records each ``CrossEncoder.train`` call (contexts, budget) and each
    ``relevance_features`` result."""
    monkeypatch.setattr(cross_encoder_module, "default_text_model_path", lambda: tiny_base)
    calls: dict[str, list] = {"train": [], "features": []}
    train, features = CrossEncoder.train, training.relevance_features

    def spy_train(self: CrossEncoder, contexts: list[str], titles: list[str], labels: np.ndarray, **kwargs):  # noqa: ANN202
        calls["train"].append({"contexts": set(contexts), "budget_seconds": kwargs["budget_seconds"]})
        return train(self, contexts, titles, labels, **kwargs)

    def spy_features(*args, **kwargs) -> pl.DataFrame:  # noqa: ANN002, ANN003
        calls["features"].append(features(*args, **kwargs))
        return calls["features"][-1]

    monkeypatch.setattr(CrossEncoder, "train", spy_train)
    monkeypatch.setattr(training, "relevance_features", spy_features)
    return calls


def _ce_scores(feats: pl.DataFrame) -> pl.DataFrame:
    return feats.select("query_id", "product_id", "cross_encoder").sort("query_id", "product_id")


def test_out_of_fold_cross_encoders_train_serve_as_ensemble_and_can_be_reused(
    tmp_path: Path, hashing_encoder, spies: dict[str, list]
) -> None:
    j = _judgments()
    out = tmp_path / "models"
    quiet = {"device": "cpu", "log": lambda m: None}
    summary = train_relevance_models(
        j, hashing_encoder, out, cross_encoder_folds=2, cross_encoder_budget_s=60.0, max_epochs=1.0, **quiet
    )

    folds_dir = out / "cross_encoder_folds"
    assert all((folds_dir / f"fold_{i}" / "cross_encoder.json").exists() for i in range(2))
    assert not (out / "cross_encoder").exists()
    training = json.loads((out / "training.json").read_text())
    assert training["cross_encoder_folds"] == summary["cross_encoder_folds"] == 2
    assert training["fusion_queries"] == len(QUERIES)  # the fusion trains on every query
    record = training["cross_encoder"]
    per_fold = record["per_fold"]
    assert [r["fold"] for r in per_fold] == [0, 1]
    assert all(r["pairs_seen"] > 0 and {"epochs", "seconds", "pairs_per_second"} <= set(r) for r in per_fold)
    assert record["pairs_seen"] == sum(r["pairs_seen"] for r in per_fold)
    assert record["epochs"] == pytest.approx(np.mean([r["epochs"] for r in per_fold]))
    assert sum(r["held_out_queries"] for r in per_fold) == len(QUERIES)
    # each model has half the budget, and trained on exactly the queries outside its fold
    assert [c["budget_seconds"] for c in spies["train"]] == [30.0, 30.0]
    query_fold = json.loads((out / record["fold_assignment"]).read_text())["query_fold"]
    assert set(query_fold) == set(j["query_id"]) and set(query_fold.values()) == {0, 1}
    recomputed = query_folds(j["query_id"], 2, record["fold_seed"]).tolist()
    assert query_fold == dict(zip(j["query_id"], recomputed, strict=True))
    query_of = dict(zip(j["query_id"], j["query"], strict=True))
    for i, call in enumerate(spies["train"]):
        assert call["contexts"] == {query_of[q] for q, f in query_fold.items() if f != i}

    # every query's fusion feature came from the model that did not train on it
    oof = _ce_scores(spies["features"][-1])
    for i in range(2):
        held_out = j.filter(pl.col("query_id").replace_strict(query_fold) == i).sort("query_id", "product_id")
        member = CrossEncoder.load(folds_dir / f"fold_{i}", device="cpu")
        expected = member.score(held_out["query"].to_list(), held_out["title"].to_list())
        got = oof.filter(pl.col("query_id").is_in(held_out["query_id"].implode()))["cross_encoder"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    # served: the ensemble, the mean of its members
    models = RelevanceModels.load(out, device="cpu")
    ensemble = models.cross_encoder
    assert isinstance(ensemble, CrossEncoderEnsemble) and len(ensemble.members) == 2
    assert ensemble.version == record["version"] == summary["cross_encoder"]["version"]
    contexts, titles = j["query"].to_list(), j["title"].to_list()
    mean = np.mean([m.score(contexts, titles) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.score(contexts, titles), mean, rtol=1e-6)
    result = evaluate(j, hashing_encoder, models)
    assert {"cross_encoder", "fusion", "fusion_without_cross_encoder"} <= set(result["rankers"])
    assert result["models"]["cross_encoder"] == ensemble.version

    # retrain only the fusion: the same out-of-fold scores from the saved members, the record kept
    spies["features"].clear()
    again = train_fusion_models(j, hashing_encoder, out, **quiet)
    assert again["cross_encoder_reused"] and again["cross_encoder_folds"] == 2
    assert again["cross_encoder"] == record and again["fusion_queries"] == len(QUERIES)
    reused = _ce_scores(spies["features"][-1])
    np.testing.assert_allclose(reused["cross_encoder"].to_numpy(), oof["cross_encoder"].to_numpy(), atol=1e-5)

    # one fold again: today's layout (the folds removed, else they would be served), fusion on 20%
    spies["train"].clear()
    single = train_relevance_models(j, hashing_encoder, out, cross_encoder_budget_s=60.0, max_epochs=1.0, **quiet)
    assert not folds_dir.exists() and (out / "cross_encoder" / "cross_encoder.json").exists()
    assert single["cross_encoder_folds"] == 1 and single["fusion_queries"] == 2
    assert [c["budget_seconds"] for c in spies["train"]] == [60.0]
    assert isinstance(RelevanceModels.load(out, device="cpu").cross_encoder, CrossEncoder)


def test_cross_encoder_folds_must_be_positive(tmp_path: Path, hashing_encoder) -> None:
    with pytest.raises(ValueError, match="cross_encoder_folds"):
        train_relevance_models(_judgments(), hashing_encoder, tmp_path, cross_encoder_folds=0)


def test_refit_serves_a_cross_encoder_trained_on_every_query_and_blocks_in_sample_reuse(
    tmp_path: Path, hashing_encoder, spies: dict[str, list]
) -> None:
    j = _judgments()
    out = tmp_path / "models"
    quiet = {"device": "cpu", "log": lambda m: None}
    summary = train_relevance_models(
        j, hashing_encoder, out, cross_encoder_budget_s=20.0, max_epochs=1.0, refit_cross_encoder=True, **quiet
    )
    first, refit = spies["train"]
    assert refit["contexts"] == set(QUERIES) and first["contexts"] < set(QUERIES)  # the first kept queries out
    assert refit["budget_seconds"] == first["budget_seconds"] == 20.0
    training = json.loads((out / "training.json").read_text())
    assert training == json.loads(json.dumps(summary, default=float))
    assert training["cross_encoder"]["refit_on_all_queries"] is True
    assert training["cross_encoder"]["train_pairs"] == j.height
    assert training["cross_encoder_selection"]["train_pairs"] < j.height
    assert training["cross_encoder"]["fusion_reads_raw_cross_encoder"] == (
        "cross_encoder" in RelevanceModels.load(out, device="cpu").fusion_with_ce.features
    )
    served = RelevanceModels.load(out, device="cpu").cross_encoder
    assert served.version == training["cross_encoder"]["version"] != training["cross_encoder_selection"]["version"]
    # the fusion's queries are now in the served model's training data: reusing it for the fusion is refused
    with pytest.raises(ValueError, match="refit on all queries"):
        train_fusion_models(j, hashing_encoder, out, **quiet)
    with pytest.raises(ValueError, match="single cross-encoder"):
        train_relevance_models(j, hashing_encoder, out, cross_encoder_folds=2, refit_cross_encoder=True, **quiet)
