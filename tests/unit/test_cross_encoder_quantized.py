"""int8 dynamic quantization of the cross-encoder, on a tiny random-initialised BERT (no weights to load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from seestocks_rank.models.cross_encoder import CrossEncoder  # noqa: E402
from tests.unit.tiny_models import CONTEXTS, TITLES, tiny_cross_encoder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> CrossEncoder:
    return tiny_cross_encoder(tmp_path_factory.mktemp("tiny_bert"))


def pairs() -> tuple[list[str], list[str]]:
    """Every context with every title: 60 pairs of varied lengths."""
    return [c for c in CONTEXTS for _ in TITLES], [t for _ in CONTEXTS for t in TITLES]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def test_quantized_scores_track_float_scores(tiny: CrossEncoder) -> None:
    contexts, titles = pairs()
    fp32 = tiny.score(contexts, titles)
    int8 = tiny.quantized().score(contexts, titles)
    assert int8.shape == fp32.shape == (len(titles),) and int8.dtype == np.float32
    assert fp32.std() > 0.01  # the check below means something only if the scores differ
    assert spearman(fp32, int8) > 0.95
    assert np.abs(fp32 - int8).mean() < 0.2 * fp32.std()
    tensor = tiny.quantized(per_channel=False).score(contexts, titles)
    assert spearman(fp32, tensor) > 0.9


def test_quantized_scores_stay_in_input_order(tiny: CrossEncoder) -> None:
    contexts, titles = pairs()
    int8 = tiny.quantized()
    scores = int8.score(contexts, titles)
    perm = np.random.default_rng(0).permutation(len(titles))
    shuffled = int8.score([contexts[i] for i in perm], [titles[i] for i in perm])
    np.testing.assert_allclose(shuffled, scores[perm], rtol=0, atol=1e-5)
    assert int8.score([], []).shape == (0,)


def test_length_sorted_batches_match_one_pair_at_a_time(tiny: CrossEncoder) -> None:
    contexts, titles = pairs()
    batched = tiny.score(contexts, titles, batch_size=16)
    with torch.inference_mode():
        single = np.array([tiny._logits(tiny._batch([c], [t])).item() for c, t in zip(contexts, titles, strict=True)])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-4)


def test_quantized_is_a_copy(tiny: CrossEncoder) -> None:
    contexts, titles = pairs()
    before = tiny.score(contexts, titles)
    int8 = tiny.quantized()
    assert (int8.precision, tiny.precision) == ("int8", "float32")
    assert int8.version == "tiny+int8" and tiny.quantized(per_channel=False).version == "tiny+int8-tensor"
    assert int8.quantized() is int8
    linear = torch.nn.Linear
    assert not any(type(m) is linear for m in int8.encoder.modules())
    assert sum(type(m) is linear for m in tiny.encoder.modules()) == 13  # 2 x (q, k, v, out, ffn in, ffn out), pooler
    np.testing.assert_array_equal(tiny.score(contexts, titles), before)


def test_quantized_refuses_training_saving_and_cuda(tiny: CrossEncoder, tmp_path: Path) -> None:
    int8 = tiny.quantized()
    with pytest.raises(ValueError, match="cannot be trained"):
        int8.train(CONTEXTS, TITLES[: len(CONTEXTS)], np.ones(len(CONTEXTS)), budget_seconds=1.0)
    with pytest.raises(ValueError, match="quantize after loading"):
        int8.save(tmp_path / "ce")
    on_gpu = CrossEncoder(tiny.encoder, tiny.tokenizer, tiny.head, max_length=32, device="cuda", version="v", base="b")
    with pytest.raises(ValueError, match="CPU-only"):
        on_gpu.quantized()
    with pytest.raises(ValueError, match="CPU-only"):
        CrossEncoder.load(tmp_path / "anything", device="cuda", quantize=True)


def test_load_quantized(tiny: CrossEncoder, tmp_path: Path) -> None:
    folder = tiny.save(tmp_path / "ce")
    contexts, titles = pairs()
    fp32 = CrossEncoder.load(folder, device="cpu")
    int8 = CrossEncoder.load(folder, device="cpu", quantize=True)
    assert (fp32.precision, int8.precision) == ("float32", "int8")
    np.testing.assert_allclose(fp32.score(contexts, titles), tiny.score(contexts, titles), rtol=0, atol=1e-5)
    assert spearman(fp32.score(contexts, titles), int8.score(contexts, titles)) > 0.95
