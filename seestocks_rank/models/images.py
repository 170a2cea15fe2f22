"""Product images: safe loading (size limits, reasons for failures) and CLIP preprocessing."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused ("too_large"), never decoded


MAX_IMAGE_BYTES = 64 * 1024 * 1024  # larger files are refused ("too_large"), never read


IMAGE_REASONS = (
    "no_image", "missing_file", "not_a_file", "too_large", "truncated", "corrupt", "empty_image", "outside_folder",
)  # fmt: skip


def file_problem(path: Path, within: Path | None = None) -> str | None:
    """Why ``path`` is not an image file worth opening (None: it may be one), from the file system alone:
    ``outside_folder`` (it resolves, symlinks followed, outside ``within``), ``missing_file``,
    ``not_a_file`` (a folder, device, FIFO or socket: never opened, so ``/dev/zero`` or a pipe cannot
    hang a run) or ``too_large`` (over :data:`MAX_IMAGE_BYTES`)."""
    real = Path(os.path.realpath(path))
    if within is not None and not real.is_relative_to(Path(os.path.realpath(within))):
        return "outside_folder"
    try:
        info = real.stat()
    except OSError:
        return "missing_file"
    if not stat.S_ISREG(info.st_mode):
        return "not_a_file"
    return "too_large" if info.st_size > MAX_IMAGE_BYTES else None


def image_stamp(path: str | Path | None) -> str:
    """``<size>:<mtime_ns>`` of an image file (empty when there is none or it cannot be read): cheap enough
    to take for every product every night, and it changes when the file is replaced."""
    if not path:
        return ""
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


def image_problem(path: str | Path, within: Path | None = None, *, max_pixels: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why an image cannot be used (None: it can): :func:`file_problem`, then the header and a
    :meth:`PIL.Image.Image.verify` pass (``too_large``, ``empty_image``, ``truncated``, ``corrupt``)
    without decoding the pixels."""
    problem = file_problem(Path(path), within)
    if problem is not None:
        return problem
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                return "too_large"
            if width == 0 or height == 0:
                return "empty_image"
            im.verify()
    except Image.DecompressionBombError:
        return "too_large"
    except OSError as exc:
        return "truncated" if "truncated" in str(exc).lower() else "corrupt"
    except Exception:  # any other decoder failure
        return "corrupt"
    return None


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image | None
    reason: str | None  # one of IMAGE_REASONS when ``image`` is None


def load_image(path: str | Path | None, *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """An RGB image, or ``None`` and why: ``no_image``, ``missing_file``, ``not_a_file``, ``too_large``
    (over :data:`MAX_IMAGE_BYTES`, or more than ``max_pixels``, refused before decoding), ``truncated``,
    ``corrupt``, ``empty_image``.
    CMYK, palette, greyscale and transparent images are converted to RGB (transparency onto white)."""
    if path is None or str(path).strip() == "":
        return LoadedImage(None, "no_image")
    p = Path(path)
    problem = file_problem(p)
    if problem is not None:
        return LoadedImage(None, problem)
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
