"""The open_clip image path: device/precision, checkpoints, bad images, fused vectors, a tiny training run,
visual prototypes and the visual-similarity signal, the demo's product images, the CLI wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from seestocks_rank.models import vision
from seestocks_rank.models.images import ImageEmbeddings, load_image
from seestocks_rank.models.vision import (
    CheckpointMismatchError,
    LazyVisionModel,
    load_vision_model,
    resolve_precision,
    save_checkpoint,
)
from seestocks_rank.models.vlm_training import (
    TrainConfig,
    augment_batch,
    lr_factor,
    save_training,
    train_contrastive,
)
from seestocks_rank.reranking.signals import compute_features
from seestocks_rank.retrieval.centroids import visual_prototypes
from seestocks_rank.retrieval.embeddings import embed_products, fuse, image_vectors
from seestocks_rank.store.embedding_store import EmbeddingStore

TINY = "rn-tiny"
COLOURS = {
    "red shirt": (220, 30, 30),
    "green shoe": (30, 200, 40),
    "blue bag": (30, 40, 220),
    "yellow hat": (230, 220, 20),
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs with one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def tiny_model() -> vision.VisionLanguageModel:
    return load_vision_model(TINY, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def coloured_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths, titles = [], []
    for i in range(24):
        title = list(COLOURS)[i % 4]
        pixels = np.clip(np.array(COLOURS[title]) + rng.normal(0, 20, (40, 30, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        titles.append(title)
    return paths, titles


# ---------------------------------------------------------------------------------------------- device, precision


def test_precision_choice_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp16", "cpu") == "fp32"  # never half precision on the CPU
    assert resolve_precision("bf16", "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp16", "cuda:0") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int8", "cpu")


def test_resource_device_and_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    from resources import VisionModelResource

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = VisionModelResource()
    assert (res.torch_device(), res.torch_precision()) == ("cpu", "fp32")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        VisionModelResource(device="cuda").torch_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert (res.torch_device(), res.torch_precision()) == ("cuda", "fp16")
    assert VisionModelResource(precision="bf16").torch_precision() == "bf16"
    assert VisionModelResource(device="cpu", precision="fp16").torch_precision() == "fp32"


def test_resource_mode_follows_the_catalog() -> None:
    from resources import VisionModelResource

    with_images = pl.DataFrame({"image_path": ["/a.png", None]})
    without = pl.DataFrame({"image_path": [None, None]}, schema={"image_path": pl.String})
    assert VisionModelResource().enabled_for(with_images)
    assert not VisionModelResource().enabled_for(without)
    assert not VisionModelResource(mode="off").enabled_for(with_images)
    assert VisionModelResource(mode="on").enabled_for(without)


# ---------------------------------------------------------------------------------------------- checkpoints


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vision_model(TINY, tmp_path / "nope.pt", device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LazyVisionModel(TINY, tmp_path / "nope.pt")


def test_checkpoint_round_trip(tiny_model, coloured_images, tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model.model, tmp_path / "ck.pt", architecture=TINY, meta={"note": "x"})
    again = load_vision_model(TINY, path, device="cpu", seed=123)  # a different seed: weights come from the file
    a = tiny_model.encode_images(coloured_images[0][:3]).vectors
    b = again.encode_images(coloured_images[0][:3]).vectors
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert again.meta == {"note": "x"} and again.model_version.startswith("rn-tiny@")


def test_mismatched_checkpoint_is_a_clear_error(tiny_model, tmp_path: Path) -> None:
    path = save_checkpoint(tiny_model.model, tmp_path / "ck.pt", architecture=TINY)
    wider = vision.architecture_config(TINY)
    wider["vision_cfg"]["width"] = 16
    with pytest.raises(CheckpointMismatchError, match="trained for architecture 'rn-tiny'"):
        load_vision_model(wider, path, device="cpu")
    # a bare state dict (no recorded architecture) is checked key by key and shape by shape
    bare = tmp_path / "bare.pt"
    state = {k: v for k, v in tiny_model.model.state_dict().items() if not k.startswith("visual.layer4")}
    torch.save(state, bare)
    with pytest.raises(CheckpointMismatchError, match=r"missing key\(s\), e.g. \['visual.layer4"):
        load_vision_model(TINY, bare, device="cpu")
    torch.save(tiny_model.model.state_dict(), bare)
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        load_vision_model(wider, bare, device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable torch checkpoint"):
        load_vision_model(TINY, junk, device="cpu")


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        vision.architecture_config("no-such-model")
    with pytest.raises(ValueError, match="downloaded"):
        vision.architecture_config("hf-hub:timm/whatever")


# ---------------------------------------------------------------------------------------------- bad images


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.jpg"
    Image.new("RGB", (60, 80), (200, 10, 10)).save(good, quality=95)
    cmyk = d / "cmyk.jpg"
    Image.new("CMYK", (60, 80), (0, 200, 200, 0)).save(cmyk)
    rgba = d / "rgba.png"
    Image.new("RGBA", (20, 20), (0, 0, 255, 0)).save(rgba)
    corrupt = d / "corrupt.jpg"
    corrupt.write_bytes(b"GIF89 this is not an image at all" * 10)
    truncated = d / "truncated.jpg"
    noisy = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:1500])
    huge = d / "huge.png"
    Image.new("1", (8000, 8000)).save(huge)  # 64 Mpx, a few KB on disk
    return {
        "good": str(good),
        "cmyk": str(cmyk),
        "rgba": str(rgba),
        "corrupt": str(corrupt),
        "truncated": str(truncated),
        "huge": str(huge),
        "missing": str(d / "missing.jpg"),
        "folder": str(d),
        "empty": "",
    }


def test_each_kind_of_bad_image_gets_a_reason(bad_images: dict[str, str]) -> None:
    expected = {
        "good": None,
        "cmyk": None,
        "rgba": None,
        "corrupt": "corrupt",
        "truncated": "truncated",
        "huge": "too_large",
        "missing": "missing_file",
        "folder": "not_a_file",
        "empty": "no_image",
    }
    for kind, reason in expected.items():
        loaded = load_image(bad_images[kind])
        assert loaded.reason == reason, kind
        assert (loaded.image is None) == (reason is not None), kind
    cmyk = load_image(bad_images["cmyk"]).image
    assert cmyk.mode == "RGB" and cmyk.getpixel((5, 5))[0] > 200  # cyan-free, magenta+yellow -> red
    assert load_image(bad_images["rgba"]).image.getpixel((3, 3)) == (255, 255, 255)  # transparent -> white


def test_a_batch_with_bad_images_goes_on(tiny_model, bad_images: dict[str, str]) -> None:
    kinds = ["good", "corrupt", "cmyk", "truncated", "missing", "huge", "rgba"]
    out = tiny_model.encode_images([bad_images[k] for k in kinds])
    assert out.ok.tolist() == [True, False, True, False, False, False, True]
    assert out.reasons == [None, "corrupt", None, "truncated", "missing_file", "too_large", None]
    np.testing.assert_allclose(np.linalg.norm(out.vectors[out.ok], axis=1), 1.0, atol=1e-5)
    assert not out.vectors[~out.ok].any()
    assert out.failures == {"corrupt": 1, "truncated": 1, "missing_file": 1, "too_large": 1}


# ---------------------------------------------------------------------------------------------- fused vector


def test_fuse_mixes_where_an_image_exists_and_falls_back_to_text() -> None:
    text = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    image = np.array([[0, 0, 1], [0, 0, 1]], dtype=np.float32)
    out = fuse(text, image, np.array([True, False]), text_weight=0.6, image_weight=0.8)
    np.testing.assert_allclose(out[0], [0.6, 0, 0.8], atol=1e-6)
    np.testing.assert_allclose(out[1], [0, 1, 0])
    # spaces of different size: text alone everywhere
    np.testing.assert_array_equal(fuse(text, np.ones((2, 5), np.float32), np.array([True, True])), text)


class _FakeImageModel:
    """Image 'embedding' = a fixed unit vector per file name; unreadable -> reason."""

    def __init__(self, dim: int):
        self.dim = dim
        self.model_version = "fake-img@1"
        self.calls = 0

    def encode_images(self, paths):
        self.calls += 1
        vecs = np.zeros((len(paths), self.dim), dtype=np.float32)
        ok = np.array(["bad" not in p for p in paths])
        vecs[ok, 0] = 1.0
        reasons = [None if good else "corrupt" for good in ok]
        return ImageEmbeddings(vecs, ok, reasons)


def test_embed_products_with_images(hashing_encoder, tmp_path) -> None:
    products = pl.DataFrame(
        {
            "offer_id": ["a", "b", "c"],
            "title": ["red shirt", "blue bag", "green shoe"],
            "image_path": ["/x/a.png", "/x/bad.png", None],
        }
    )
    images = _FakeImageModel(hashing_encoder.dim)
    run = embed_products(products, hashing_encoder, tmp_path, None, images, text_weight=0.5, image_weight=0.5)
    store = run.store
    assert store.manifest.get_column("image_error").to_list() == [None, "corrupt", None]
    assert store.image_mask().tolist() == [True, False, False] and store.has_images
    text, emb = store.vectors("text"), store.vectors("fused")
    img = np.zeros(hashing_encoder.dim, dtype=np.float32)
    img[0] = 1
    expected = 0.5 * text[0] + 0.5 * img
    np.testing.assert_allclose(emb[0], expected / np.linalg.norm(expected), atol=1e-6)
    np.testing.assert_allclose(emb[1:], text[1:])  # no usable image: text alone
    assert "fake-img@1" in store.manifest.get_column("model_version")[0]
    store.commit()
    reopened = EmbeddingStore.open(tmp_path)
    again = embed_products(products, hashing_encoder, tmp_path, reopened, images, text_weight=0.5, image_weight=0.5)
    assert (again.encoded, again.reused, images.calls) == (0, 3, 1)
    mat, ok = image_vectors(products.select("offer_id").reverse(), reopened)
    assert ok.tolist() == [False, False, True] and mat[2, 0] == 1.0 and (mat[:2] == 0).all()


def test_only_new_or_replaced_images_are_encoded_again(hashing_encoder, tmp_path) -> None:
    import os

    for name in ("a", "b"):
        (tmp_path / f"{name}.png").write_bytes(name.encode())
    products = pl.DataFrame(
        {"offer_id": ["a", "b"], "title": ["red shirt", "blue bag"], "image_path": [str(tmp_path / "a.png"),
                                                                                     str(tmp_path / "b.png")]}
    )  # fmt: skip
    images, root = _FakeImageModel(hashing_encoder.dim), tmp_path / "store"
    first = embed_products(products, hashing_encoder, root, None, images)
    assert (first.encoded, first.images_encoded) == (2, 2)
    first.store.commit()
    same = embed_products(products, hashing_encoder, root, EmbeddingStore.open(root), images)
    assert (same.encoded, same.images_encoded, same.reused) == (0, 0, 2)
    (tmp_path / "b.png").write_bytes(b"a new photo")  # replaced in place: same path, same title
    os.utime(tmp_path / "b.png", ns=(1, 1))
    (tmp_path / "c.png").write_bytes(b"c")
    grown = pl.concat(
        [products, pl.DataFrame({"offer_id": ["c"], "title": ["hat"], "image_path": [str(tmp_path / "c.png")]})]
    )
    again = embed_products(grown, hashing_encoder, root, EmbeddingStore.open(root), images)
    assert (again.encoded, again.images_encoded, again.reused) == (2, 2, 1)
    assert again.store.manifest.filter(pl.col("offer_id") == "b").get_column("image_stamp")[0].startswith("11:")


def test_text_only_store_has_no_image_vectors_without_an_image_model(hashing_encoder, tmp_path) -> None:
    products = pl.DataFrame({"offer_id": ["a"], "title": ["red shirt"], "image_path": ["/x/a.png"]})
    store = embed_products(products, hashing_encoder, tmp_path).store
    assert store.image_dim is None and store.manifest.get_column("image_error").null_count() == 1
    np.testing.assert_array_equal(store.vectors("fused"), store.vectors("text"))
    assert image_vectors(products, store) is None


# ---------------------------------------------------------------------------------------------- training


def test_a_few_steps_lower_the_loss(coloured_images, tmp_path: Path) -> None:
    model = load_vision_model(TINY, device="cpu", precision="fp32", seed=1)
    paths, titles = coloured_images
    result = train_contrastive(model, paths, titles, TrainConfig(max_steps=25, batch_size=8, lr=5e-3, warmup_steps=5))
    assert result.steps == 25 and result.stopped_by == "steps"
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    checkpoint = save_training(model, result, tmp_path / "v1", architecture=TINY)
    assert (tmp_path / "v1" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    reloaded = load_vision_model(TINY, checkpoint, device="cpu")
    assert reloaded.meta["train"]["steps"] == 25 and len(reloaded.meta["losses"]) == 25


def test_training_time_budget_and_unreadable_pairs(coloured_images) -> None:
    model = load_vision_model(TINY, device="cpu", precision="fp32")
    paths, titles = coloured_images
    result = train_contrastive(model, [*paths[:8], "/no/such.png"], [*titles[:8], "x"], TrainConfig(minutes=0.0))
    assert result.steps == 0 and result.stopped_by == "time" and result.skipped_images == {"missing_file": 1}


def test_lr_schedule() -> None:
    def cosine(step: int, elapsed: float = 0.0) -> float:
        return lr_factor("cosine", step, elapsed, warmup=10, max_steps=100, budget_s=60.0)

    assert lr_factor("constant", 0, 0.0, warmup=10, max_steps=None, budget_s=60.0) == pytest.approx(0.1)
    assert lr_factor("constant", 50, 59.0, warmup=10, max_steps=None, budget_s=60.0) == 1.0
    assert cosine(0) == pytest.approx(0.1 * 1.0)
    assert cosine(50) == pytest.approx(0.5)
    assert cosine(100) == pytest.approx(0.0, abs=1e-12)
    assert cosine(20, elapsed=30.0) == pytest.approx(0.5)  # the time budget is the larger share: it decides
    assert lr_factor("cosine", 10, 60.0, warmup=1, max_steps=None, budget_s=60.0) == pytest.approx(0.0, abs=1e-12)


def test_augment_batch_keeps_shape_and_range() -> None:
    import torch

    x = torch.rand(6, 3, 16, 16)
    flipped = augment_batch(x, torch.Generator().manual_seed(0), flip=True, strong=False)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(2)) for f, o in zip(flipped, x, strict=True))
    strong = augment_batch(x, torch.Generator().manual_seed(0), flip=True, strong=True)
    again = augment_batch(x, torch.Generator().manual_seed(0), flip=True, strong=True)
    assert strong.shape == x.shape and torch.equal(strong, again)
    assert float(strong.min()) >= 0.0 and float(strong.max()) <= 1.0 and not torch.equal(strong, x)


def test_strong_augmentation_trains_and_bad_settings_are_refused(coloured_images) -> None:
    model = load_vision_model(TINY, device="cpu", precision="fp32")
    paths, titles = coloured_images
    result = train_contrastive(model, paths, titles, TrainConfig(max_steps=3, batch_size=8, augment="strong"))
    assert result.steps == 3 and np.isfinite(result.losses).all()
    with pytest.raises(ValueError, match="augment"):
        train_contrastive(model, paths, titles, TrainConfig(max_steps=1, augment="heavy"))
    with pytest.raises(ValueError, match="schedule"):
        train_contrastive(model, paths, titles, TrainConfig(max_steps=1, schedule="linear"))


# ---------------------------------------------------------------------------------------------- prototypes, signal


def test_visual_prototypes() -> None:
    e = np.eye(3, dtype=np.float32)
    by_page = {2: np.array([0, 1]), 3: np.array([2]), 4: np.zeros(0, dtype=np.int64)}
    images = np.stack([e[0], e[0], e[1]])
    ok = np.array([True, True, False])
    proto, has, counts = visual_prototypes(by_page, [2, 3, 4], images, ok, None)
    assert has.tolist() == [True, False, False] and counts.tolist() == [2, 0, 0]
    np.testing.assert_allclose(proto[0], e[0])
    proto, has, _ = visual_prototypes(by_page, [2, 3, 4], images, ok, np.stack([e[2]] * 3), prompt_weight=1.0)
    assert has.all()  # the prompt's text vector stands in where no member has an image
    np.testing.assert_allclose(proto[2], e[2], atol=1e-6)


def test_compute_features_fills_visual_similarity(hashing_encoder, tmp_path: Path) -> None:
    from seestocks_rank.inputs.taxonomy import Taxonomy
    from seestocks_rank.retrieval.centroids import category_centroids

    tax_file = tmp_path / "tax.txt"
    tax_file.write_text("1 - A\n2 - A > B\n3 - A > C\n")
    taxonomy = Taxonomy.load(tax_file)
    products = pl.DataFrame(
        {
            "offer_id": ["p1", "p2", "p3"],
            "title": ["red shirt", "red top", "blue bag"],
            "category_id": [2, 2, 3],
            "price": [10.0, 12.0, 30.0],
        }
    )
    vecs = hashing_encoder.encode(products.get_column("title").to_list())
    e = np.eye(4, dtype=np.float32)
    images = np.stack([e[0], e[1], e[2]])
    ok = np.array([True, True, False])
    pages = pl.DataFrame({"category_id": [2, 3]})
    prompts = hashing_encoder.encode(["B", "C"])
    centroids = category_centroids(
        pages, taxonomy, products, vecs, prompts, prompt_weight=0.0, image_vectors=images, image_ok=ok
    )
    assert centroids.get_column("visual_prototype").is_null().to_list() == [False, True]
    assert centroids.get_column("n_visual_members").to_list() == [2, 0]
    pairs = pl.DataFrame({"category_id": [2, 2, 3, 2], "offer_id": ["p1", "p2", "p1", "p3"]})
    feats = compute_features(pairs, products, vecs, centroids, taxonomy, image_vectors=images, image_ok=ok)
    sim = feats.get_column("visual_similarity").to_list()
    assert sim[0] == pytest.approx(1 / np.sqrt(2), abs=1e-5) and sim[1] == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    assert sim[2] is None and sim[3] is None  # page without prototype; product without image
    plain = compute_features(pairs, products, vecs, centroids.drop("visual_prototype"), taxonomy)
    assert plain.get_column("visual_similarity").null_count() == 4


# ---------------------------------------------------------------------------------------------- demo, CLI


def test_demo_can_draw_product_images(tmp_path: Path) -> None:
    from seestocks_rank.synthetic.demo import generate_demo
    from seestocks_rank.synthetic.demo_images import draw_product_image

    paths = generate_demo(tmp_path / "d", n_products=300, n_retailers=3, seed=1, images=True)
    catalog = pl.read_csv(paths.catalog, infer_schema=False)
    assert catalog.get_column("image_path").null_count() == 0
    files = sorted((tmp_path / "d" / "images").glob("*.png"))
    assert files and all(load_image(paths.root / p).image is not None for p in catalog["image_path"].head(20))
    a = np.asarray(draw_product_image(0, np.random.default_rng(0)), dtype=float)
    b = np.asarray(draw_product_image(1, np.random.default_rng(0)), dtype=float)
    assert np.abs(a - b).mean() > 10  # categories look different
    again = generate_demo(tmp_path / "e", n_products=300, n_retailers=3, seed=1, images=True)
    assert (again.root / "images" / files[0].name).read_bytes() == files[0].read_bytes()


def test_cli_has_bench_vision() -> None:
    from seestocks_rank.cli import build_parser

    args = build_parser().parse_args(["bench", "vision", "--images", "/x", "--labels", "/x/l.csv", "--minutes", "2"])
    assert (args.images, args.labels, args.minutes) == ("/x", "/x/l.csv", 2.0)
    assert args.func.__name__ == "cmd_bench_vision"
