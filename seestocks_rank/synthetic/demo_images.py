"""Synthetic product images for the demo's image path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SIZE = 48


_SHAPES = ("disc", "square", "triangle", "diamond", "ring", "cross")


_PATTERNS = ("plain", "hstripes", "vstripes", "dots", "checker")


def category_style(k: int) -> dict[str, Any]:
    """The look of category ``k``: a shape, a fill pattern and a hue, distinct for every demo category."""
    import colorsys

    hue = (k * 0.618033988749895) % 1.0
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.85))
    return {"shape": _SHAPES[k % len(_SHAPES)], "pattern": _PATTERNS[(k // len(_SHAPES)) % len(_PATTERNS)],
            "colour": colour}  # fmt: skip


def draw_product_image(k: int, rng: np.random.Generator, size: int = IMAGE_SIZE):  # noqa: ANN201 - PIL image
    """A product photo stand-in for category ``k``: its shape, pattern and colour on a light background,
    with jittered position, size and colour, and pixel noise."""
    from PIL import Image, ImageDraw

    style = category_style(k)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    r = size * rng.uniform(0.28, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    box = (cx - r, cy - r, cx + r, cy + r)
    shape = style["shape"]
    if shape == "disc":
        d.ellipse(box, fill=255)
    elif shape == "square":
        d.rectangle(box, fill=255)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=255)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=255)
    elif shape == "ring":
        d.ellipse(box, fill=255)
        d.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=0)
    else:  # cross
        w = r / 2.5
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = style["pattern"]
    period = int(rng.integers(5, 8))
    if pattern == "hstripes":
        light = (yy // period) % 2 == 0
    elif pattern == "vstripes":
        light = (xx // period) % 2 == 0
    elif pattern == "dots":
        light = ((yy % period) < 2) & ((xx % period) < 2)
    elif pattern == "checker":
        light = ((yy // period) + (xx // period)) % 2 == 0
    else:
        light = np.zeros((size, size), dtype=bool)
    colour = np.clip(np.array(style["colour"]) + rng.normal(0, 12, 3), 0, 255)
    fg = np.where(light[..., None], 0.55 * colour + 0.45 * 255, colour)
    base = np.asarray(img, dtype=np.float64)
    m = (np.asarray(mask) > 0)[..., None]
    out = np.where(m, fg, base) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _write_images(folder: Path, cluster_category: np.ndarray, n_categories: int, seed: int) -> None:
    """One PNG per cluster (``C000123.png``), drawn for the cluster's true category."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4242])
    for c, k in enumerate(cluster_category.tolist()):
        draw_product_image(int(k), rng).save(folder / f"C{c:06d}.png", optimize=False)
