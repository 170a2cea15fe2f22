"""Contrastive fine-tuning of an open_clip model on (image, title) pairs, within a time budget.

Two regimes, picked from the architecture:

- **locked text tower** (``lock_text`` in the config, e.g. MiniLM): the titles' text embeddings are fixed,
  so they are computed once and every image is contrasted against *all* distinct training titles (a
  softmax over the title set). Only the image tower (and the temperature) learns.
- **trainable text tower**: the usual symmetric CLIP loss over the in-batch pairs.

The loss curve is kept per step; :func:`save_training` writes a versioned folder with the checkpoint, the
curve as PNG and a ``meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seestocks_rank.models.images import CLIP_MEAN, CLIP_STD, load_canvases
from seestocks_rank.models.vision import VisionLanguageModel, save_checkpoint, torch_dtype

CHECKPOINT_FILE = "checkpoint.pt"


LOSS_CURVE_FILE = "loss_curve.png"


META_FILE = "meta.json"


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 2.0  # wall-clock budget for the optimisation loop (loading images not included)
    max_steps: int | None = None
    max_epochs: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    # after warm-up: "cosine" decays to 0 at max_steps/max_epochs or at the end of the time budget, whichever
    # comes first (bench/results/vision.md: held-out accuracy is stable at the end, 0.09 -> 0.3 at articleType);
    # "constant" keeps lr (the earlier recipe)
    schedule: str = "cosine"
    flip: bool = True  # random horizontal flips
    augment: str = "none"  # "none" or "strong": also random zoom/shift crops, small rotations, brightness/contrast
    soft_targets: float = 0.0  # locked text: target = softmax(title-title cosine / this), not one-hot; 0: one-hot
    seed: int = 0


@dataclass
class TrainResult:
    losses: list[float]
    steps: int
    epochs: float
    seconds: float
    images_per_s: float
    pairs: int
    skipped_images: dict[str, int]
    regime: str
    stopped_by: str
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        head = float(np.mean(self.losses[: max(1, len(self.losses) // 10)])) if self.losses else float("nan")
        tail = float(np.mean(self.losses[-max(1, len(self.losses) // 10) :])) if self.losses else float("nan")
        return {
            "steps": self.steps,
            "epochs": round(self.epochs, 2),
            "seconds": round(self.seconds, 1),
            "images_per_s": round(self.images_per_s, 1),
            "pairs": self.pairs,
            "skipped_images": self.skipped_images,
            "regime": self.regime,
            "stopped_by": self.stopped_by,
            "loss_first_10pct": round(head, 4),
            "loss_last_10pct": round(tail, 4),
        }


AUGMENTS = ("none", "strong")


SCHEDULES = ("constant", "cosine")


def lr_factor(
    schedule: str, step: int, elapsed_s: float, *, warmup: int, max_steps: int | None, budget_s: float
) -> float:
    """Linear warm-up over ``warmup`` steps, then constant or a cosine decay whose progress is the larger
    of the step share (when ``max_steps`` is set) and the time share of the budget."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    if schedule == "constant":
        return warm
    progress = elapsed_s / budget_s if budget_s > 0 else 1.0
    if max_steps:
        progress = max(progress, step / max_steps)
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def augment_batch(pixels, gen, *, flip: bool, strong: bool):  # noqa: ANN001, ANN201 - torch tensors
    """Augment float ``[n, 3, h, w]`` pixels in [0, 1]: horizontal flips; ``strong`` adds a random zoom
    (crop side 75-100%) and shift, a rotation within +-10 degrees (one resampling, edges repeated) and
    brightness/contrast jitter within +-20% (no hue or saturation change: titles name colours)."""
    import torch
    import torch.nn.functional as F

    n = pixels.shape[0]
    sign = torch.ones(n)
    if flip:
        sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    if not strong:
        return torch.where((sign < 0)[:, None, None, None], pixels.flip(3), pixels)
    zoom = torch.empty(n).uniform_(0.75, 1.0, generator=gen)
    angle = torch.empty(n).uniform_(-10.0, 10.0, generator=gen) * math.pi / 180.0
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - zoom)[:, None]
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack(
        [torch.stack([cos * sign, -sin, shift[:, 0]], 1), torch.stack([sin * sign, cos, shift[:, 1]], 1)], 1
    ).to(pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    x = F.grid_sample(pixels, grid, padding_mode="border", align_corners=False)
    bright = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.2, generator=gen).to(x.dtype)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.2, generator=gen).to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean).mul(bright).clamp(0.0, 1.0)


def _locked_text(vlm: VisionLanguageModel) -> bool:
    return bool(vlm.config.get("lock_text", False))


def train_contrastive(
    vlm: VisionLanguageModel,
    image_paths: Sequence[str | None],
    titles: Sequence[str],
    config: TrainConfig = TrainConfig(),
    *,
    log=None,  # noqa: ANN001 - optional callable(str)
) -> TrainResult:
    """Fine-tune ``vlm.model`` in place on the pairs whose image loads; returns the loss curve."""
    import torch
    import torch.nn.functional as F

    if len(image_paths) != len(titles):
        raise ValueError("image_paths and titles must be row-aligned")
    if config.augment not in AUGMENTS:
        raise ValueError(f"augment {config.augment!r}: use one of {AUGMENTS}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule {config.schedule!r}: use one of {SCHEDULES}")
    size = vlm.image_size
    canvases, reasons = load_canvases(list(image_paths), size)
    good = np.array([r is None for r in reasons], dtype=bool)
    skipped: dict[str, int] = {}
    for r in reasons:
        if r is not None:
            skipped[r] = skipped.get(r, 0) + 1
    canvases = canvases[good]
    kept_titles = [t for t, g in zip(titles, good, strict=True) if g]
    if len(kept_titles) < 2:
        raise ValueError(f"need at least 2 readable (image, title) pairs to train, got {len(kept_titles)}")
    distinct = sorted(set(kept_titles))
    title_index = {t: i for i, t in enumerate(distinct)}
    target = np.array([title_index[t] for t in kept_titles], dtype=np.int64)

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[None, :, None, None]
    model, device = vlm.model, vlm.device
    dtype = torch_dtype(vlm.precision)
    locked = _locked_text(vlm)
    if locked:
        model.lock_text_tower()
        title_emb = torch.from_numpy(vlm.encode_texts(distinct)).to(device, dtype)
        soft_target = None
        if config.soft_targets > 0:  # near-identical titles share the target mass instead of being negatives
            soft_target = torch.softmax((title_emb @ title_emb.T).float() / config.soft_targets, dim=1)
        params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("text.")]
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    n = len(kept_titles)
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    max_steps = config.max_steps
    if config.max_epochs is not None:
        by_epochs = max(1, math.ceil(config.max_epochs * steps_per_epoch))
        max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
    budget = config.minutes * 60.0
    losses: list[float] = []
    order = rng.permutation(n)
    cursor, step, stopped_by = 0, 0, "time"
    model.train()
    if locked:
        model.text.eval()
    start = time.perf_counter()
    while True:
        if max_steps is not None and step >= max_steps:
            stopped_by = "steps"
            break
        if time.perf_counter() - start >= budget:
            break
        if cursor + batch > n:
            order, cursor = rng.permutation(n), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        pixels = torch.from_numpy(canvases[idx]).permute(0, 3, 1, 2).float().div(255.0)
        pixels = augment_batch(pixels, gen, flip=config.flip, strong=config.augment == "strong")
        x = ((pixels - mean) / std).to(device, dtype)
        elapsed = time.perf_counter() - start
        lr = config.lr * lr_factor(
            config.schedule, step, elapsed, warmup=config.warmup_steps, max_steps=max_steps, budget_s=budget
        )
        for group in opt.param_groups:
            group["lr"] = lr
        scale = model.logit_scale.exp().clamp(max=100)
        img = model.encode_image(x, normalize=True)
        if locked:
            logits = (scale * img @ title_emb.T).float()
            rows = torch.from_numpy(target[idx]).to(device)
            if soft_target is None:
                loss = F.cross_entropy(logits, rows)
            else:
                loss = torch.sum(-soft_target[rows] * F.log_softmax(logits, 1), 1).mean()
        else:
            # in-batch pairs; rows sharing a title are all positives for each other
            tokens = vlm.tokenizer([kept_titles[i] for i in idx]).to(device)
            txt = model.encode_text(tokens, normalize=True)
            logits = (scale * img @ txt.T).float()
            same = torch.from_numpy(target[idx][:, None] == target[idx][None, :]).to(device).float()
            soft = same / same.sum(1, keepdim=True)
            loss = 0.5 * (
                torch.sum(-soft * F.log_softmax(logits, 1), 1).mean()
                + torch.sum(-soft * F.log_softmax(logits.T, 1), 1).mean()
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        step += 1
        if log is not None and step % 50 == 0:
            log(f"step {step} loss {np.mean(losses[-50:]):.4f} ({time.perf_counter() - start:.0f} s)")
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(
        losses=losses,
        steps=step,
        epochs=step * batch / n,
        seconds=seconds,
        images_per_s=step * batch / seconds if seconds > 0 else 0.0,
        pairs=n,
        skipped_images=skipped,
        regime="locked_text_all_titles" if locked else "clip_in_batch",
        stopped_by=stopped_by,
        extra={
            "distinct_titles": len(distinct),
            "batch_size": batch,
            "logit_scale_end": round(float(model.logit_scale.detach().exp().clamp(max=100)), 3),
        },
    )


def training_version(
    architecture: str,
    start_checkpoint: str | None,
    image_paths: Sequence[str],
    titles: Sequence[str],
    config: TrainConfig,
) -> str:
    """A content hash of what the training depends on: same inputs, same version (the asset reuses it)."""
    h = hashlib.sha1()
    h.update(json.dumps({"arch": architecture, "start": start_checkpoint, "config": asdict(config)}).encode())
    for path, title in sorted(zip(image_paths, titles, strict=True)):
        h.update(f"{path}\t{title}\n".encode())
    return h.hexdigest()[:12]


def plot_losses(losses: Sequence[float], path: Path, *, title: str = "contrastive training loss") -> Path:
    """The per-step loss and its moving average as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    y = np.asarray(losses, dtype=float)
    ax.plot(np.arange(1, len(y) + 1), y, lw=0.6, alpha=0.4, label="step")
    if len(y) >= 5:
        w = max(5, len(y) // 25)
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, len(y) + 1), smooth, lw=1.5, label=f"mean of {w}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_training(
    vlm: VisionLanguageModel, result: TrainResult, folder: Path, *, architecture: str | dict, meta: dict | None = None
) -> Path:
    """``folder/checkpoint.pt``, ``folder/loss_curve.png`` and ``folder/meta.json``; returns the checkpoint."""
    folder = Path(folder)
    info = {**(meta or {}), "train": result.summary(), "losses": [round(v, 5) for v in result.losses]}
    checkpoint = save_checkpoint(vlm.model, folder / CHECKPOINT_FILE, architecture=architecture, meta=info)
    plot_losses(result.losses, folder / LOSS_CURVE_FILE)
    (folder / META_FILE).write_text(json.dumps({k: v for k, v in info.items() if k != "losses"}, indent=2))
    return checkpoint
