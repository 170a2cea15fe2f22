"""Cross-encoder fine-tuning: learning-rate annealing, training precision, frozen word embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from seestocks_rank.models import cross_encoder as ce_module  # noqa: E402
from seestocks_rank.models.cross_encoder import annealed_lr_factor, training_precision  # noqa: E402
from tests.unit.tiny_models import CONTEXTS, TITLES, tiny_cross_encoder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lr_warms_up_then_anneals_to_zero_at_the_planned_steps():
    factor = lambda step: annealed_lr_factor(step, 0.0, planned_steps=100, budget_s=1e9, warmup=10)  # noqa: E731
    assert factor(0) == pytest.approx(0.1)
    assert factor(4) == pytest.approx(0.5)
    assert factor(10) == pytest.approx(0.9)  # past warm-up: 1 - 10/100
    assert factor(50) == pytest.approx(0.5)
    assert factor(100) == 0.0
    assert factor(150) == 0.0


def test_lr_anneals_to_zero_at_the_time_budget_when_that_comes_first():
    # step 20 of 1000 planned, but 75% of the 60 s budget spent: 25% of the rate left
    assert annealed_lr_factor(20, 45.0, planned_steps=1000, budget_s=60.0, warmup=10) == pytest.approx(0.25)
    assert annealed_lr_factor(20, 60.0, planned_steps=1000, budget_s=60.0, warmup=10) == 0.0
    # the warm-up still limits the rate early on
    assert annealed_lr_factor(1, 1.0, planned_steps=1000, budget_s=60.0, warmup=10) == pytest.approx(0.2)


def test_training_precision(monkeypatch: pytest.MonkeyPatch):
    assert training_precision("cpu", "float32") == "float32"
    assert training_precision("cpu", "bfloat16") == "bfloat16"
    monkeypatch.setattr(ce_module, "cpu_has_native_bf16", lambda: True)
    assert training_precision("cpu") == "bfloat16"
    monkeypatch.setattr(ce_module, "cpu_has_native_bf16", lambda: False)
    assert training_precision("cpu") == "float32"
    with pytest.raises(ValueError, match="float16"):
        training_precision("cpu", "float16")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_training_keeps_word_embeddings_frozen_and_moves_the_rest(tmp_path: Path, precision: str):
    model = tiny_cross_encoder(tmp_path)
    embeddings = model.encoder.get_input_embeddings().weight.detach().clone()
    layer = model.encoder.encoder.layer[-1].output.dense.weight.detach().clone()
    contexts = [c for c in CONTEXTS for _ in TITLES]
    titles = [t for _ in CONTEXTS for t in TITLES]
    labels = np.array([float(c.split()[0] in t) for c, t in zip(contexts, titles, strict=True)])
    report = model.train(
        contexts, titles, labels, budget_seconds=30.0, max_epochs=2.0, batch_size=8, precision=precision
    )
    assert report.precision == precision
    assert report.epochs == pytest.approx(2.0, abs=0.01)  # the epochs ran out before the budget
    assert np.isfinite(report.loss_curve).all()
    assert torch.equal(model.encoder.get_input_embeddings().weight, embeddings)
    assert not torch.equal(model.encoder.encoder.layer[-1].output.dense.weight, layer)
    assert model.encoder.get_input_embeddings().weight.requires_grad  # restored for later use
    assert model.version != "tiny"


def test_training_can_update_word_embeddings(tmp_path: Path):
    model = tiny_cross_encoder(tmp_path)
    embeddings = model.encoder.get_input_embeddings().weight.detach().clone()
    model.train(
        CONTEXTS,
        TITLES[: len(CONTEXTS)],
        np.linspace(0, 1, len(CONTEXTS)),
        budget_seconds=30.0,
        max_epochs=1.0,
        batch_size=3,
        precision="float32",
        freeze_word_embeddings=False,
    )
    assert not torch.equal(model.encoder.get_input_embeddings().weight, embeddings)
