"""``seestocks-rank bench vision``: does contrastive training on (image, title) pairs teach an image tower
the catalog's categories? Works on any labelled image folder.

Input: a CSV with ``image, title, category_path`` (``image`` relative to ``--images`` or absolute;
``category_path`` ``>``-separated, e.g. ``Apparel > Topwear > Tshirts``). A seeded 80% of the rows trains
the model within the time budget; on the other 20% the images are classified zero-shot, per hierarchy
level, against text prompts of every class of that level, for three models: chance (uniform guess over
the classes), the untrained model (same seed, before training) and the trained one. One JSON object.

Three prompt sets are scored: ``name`` (the class name itself, e.g. "Apparel"), ``subtree`` (the mean text
embedding of the class name and every name below it: "Apparel" is also "Topwear", "Tshirts", ...) and
``leaf_rollup`` (classify among the deepest categories by name, then read off the ancestor at the level).
All use only the taxonomy's names, so all are zero-shot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from seestocks_rank.models.device import cpu_model
from seestocks_rank.models.vision import DEFAULT_ARCHITECTURE, VisionLanguageModel, load_vision_model
from seestocks_rank.models.vlm_training import TrainConfig, train_contrastive
from seestocks_rank.splits import seeded_split

FASHION_LEVELS = ("masterCategory", "subCategory", "articleType")


PROMPT_SETS = ("name", "subtree", "leaf_rollup")


def write_fashion_labels(fashion_dir: str | Path, out_csv: str | Path) -> Path:
    """The labels CSV for the Kaggle fashion sample: ``sample_styles.csv`` rows whose ``images/<id>.jpg``
    exists, with ``productDisplayName`` as title and ``masterCategory > subCategory > articleType``."""
    fashion_dir = Path(fashion_dir)
    styles = pl.read_csv(fashion_dir / "sample_styles.csv", infer_schema=False)
    table = styles.select(
        (pl.lit(str((fashion_dir / "images").resolve()) + "/") + pl.col("id") + ".jpg").alias("image"),
        pl.col("productDisplayName").str.strip_chars().alias("title"),
        pl.concat_str([pl.col(c).str.strip_chars() for c in FASHION_LEVELS], separator=" > ").alias("category_path"),
    ).drop_nulls()
    table = table.filter(pl.col("image").map_elements(lambda p: Path(p).is_file(), return_dtype=pl.Boolean))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(out_csv)
    return out_csv


def read_labels(labels: str | Path, images: str | Path | None = None) -> pl.DataFrame:
    """``image`` (resolved against ``images``, default the labels file's folder), ``title``,
    ``category_path`` (normalised to ``A > B > C``)."""
    labels = Path(labels)
    table = pl.read_csv(labels, infer_schema=False)
    missing = [c for c in ("image", "title", "category_path") if c not in table.columns]
    if missing:
        raise ValueError(f"{labels} lacks column(s) {missing}: expected image, title, category_path")
    root = str(Path(images or labels.parent).resolve()).rstrip("/") + "/"
    return table.select(
        pl.when(pl.col("image").str.starts_with("/")).then(pl.col("image")).otherwise(pl.lit(root) + pl.col("image")),
        pl.col("title").str.strip_chars(),
        pl.col("category_path").str.split(">").list.eval(pl.element().str.strip_chars()).list.join(" > "),
    ).drop_nulls()


def level_labels(paths: list[str], depth: int) -> list[str | None]:
    """The class of each row at ``depth`` (1-based): its path prefix, None when the path is shallower."""
    out: list[str | None] = []
    for p in paths:
        parts = p.split(" > ")
        out.append(" > ".join(parts[:depth]) if len(parts) >= depth else None)
    return out


def class_prompt_embeddings(
    vlm: VisionLanguageModel, classes: list[str], all_paths: list[str]
) -> dict[str, np.ndarray]:
    """Per prompt set, a unit ``[k, dim]`` matrix aligned with ``classes`` (path prefixes)."""
    names = sorted({" > ".join(p.split(" > ")[: i + 1]) for p in all_paths for i in range(len(p.split(" > ")))})
    leaf = {prefix: prefix.rsplit(" > ", 1)[-1] for prefix in names}
    unique_leaves = sorted(set(leaf.values()))
    emb = dict(zip(unique_leaves, vlm.encode_texts(unique_leaves), strict=True))
    name_mat = np.stack([emb[leaf[c]] for c in classes])
    subtree = []
    for c in classes:
        below = [emb[leaf[n]] for n in names if n == c or n.startswith(c + " > ")]
        v = np.mean(below, axis=0)
        subtree.append(v / max(np.linalg.norm(v), 1e-12))
    return {"name": name_mat.astype(np.float32), "subtree": np.stack(subtree).astype(np.float32)}


def zero_shot_accuracy(
    vlm: VisionLanguageModel, test_vectors: np.ndarray, test_paths: list[str], all_paths: list[str], depth: int
) -> dict[str, Any]:
    labels = level_labels(test_paths, depth)
    classes = sorted({c for c in level_labels(all_paths, depth) if c is not None})
    keep = np.array([lab is not None for lab in labels])
    truth = np.array([classes.index(lab) for lab in labels if lab is not None])
    prompts = class_prompt_embeddings(vlm, classes, all_paths)
    acc = {}
    for name, mat in prompts.items():
        pred = (test_vectors[keep] @ mat.T).argmax(1)
        acc[name] = round(float((pred == truth).mean()), 4) if len(truth) else None
    # leaf_rollup: classify among the deepest paths (leaf-name prompts), then read off the level's ancestor
    leaves = sorted(set(all_paths))
    leaf_mat = class_prompt_embeddings(vlm, leaves, all_paths)["name"]
    leaf_pred = (test_vectors[keep] @ leaf_mat.T).argmax(1)
    rolled = level_labels([leaves[i] for i in leaf_pred], depth)
    kept = [lab for lab in labels if lab is not None]
    hits = [r == t for r, t in zip(rolled, kept, strict=True)]
    acc["leaf_rollup"] = round(float(np.mean(hits)), 4) if hits else None
    return {"classes": len(classes), "accuracy": acc}


def _machine() -> dict[str, Any]:
    import open_clip
    import torch

    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
    }


def run_bench(
    labels: str | Path,
    images: str | Path | None = None,
    *,
    minutes: float = 3.0,
    architecture: str = DEFAULT_ARCHITECTURE,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = TrainConfig.lr,
    schedule: str = TrainConfig.schedule,
    augment: str = TrainConfig.augment,
    soft_targets: float = TrainConfig.soft_targets,
    level_names: list[str] | None = None,
    device: str = "auto",
    log=None,  # noqa: ANN001 - optional callable(str)
) -> dict[str, Any]:
    """Train on the seeded 80%, score the other 20% zero-shot per level: one JSON-able dict."""
    table = read_labels(labels, images)
    paths = table.get_column("category_path").to_list()
    test = seeded_split(table.height, seed)
    vlm = load_vision_model(architecture, None, device=device, precision="fp32", seed=seed)
    test_images = table.filter(pl.Series(test)).get_column("image").to_list()
    test_paths = [p for p, t in zip(paths, test, strict=True) if t]
    depth = max(len(p.split(" > ")) for p in paths)
    names = level_names or [f"level_{d}" for d in range(1, depth + 1)]

    before = vlm.encode_images(test_images)
    ok = before.ok
    scored_paths = [p for p, good in zip(test_paths, ok, strict=True) if good]
    untrained = {d: zero_shot_accuracy(vlm, before.vectors[ok], scored_paths, paths, d) for d in range(1, depth + 1)}

    train = table.filter(~pl.Series(test))
    result = train_contrastive(
        vlm,
        train.get_column("image").to_list(),
        train.get_column("title").to_list(),
        TrainConfig(
            minutes=minutes,
            batch_size=batch_size,
            lr=lr,
            schedule=schedule,
            augment=augment,
            soft_targets=soft_targets,
            seed=seed,
        ),
        log=log,
    )
    after = vlm.encode_images([p for p, good in zip(test_images, ok, strict=True) if good])
    trained = {d: zero_shot_accuracy(vlm, after.vectors, scored_paths, paths, d) for d in range(1, depth + 1)}

    levels: dict[str, Any] = {}
    for d in range(1, depth + 1):
        truth = [lab for lab in level_labels(scored_paths, d) if lab is not None]
        majority = max(truth.count(c) for c in set(truth)) / len(truth) if truth else None
        k = untrained[d]["classes"]
        levels[names[d - 1] if d - 1 < len(names) else f"level_{d}"] = {
            "depth": d,
            "classes": k,
            "chance": round(1.0 / k, 4),
            "majority_class": round(majority, 4) if majority is not None else None,
            "untrained": untrained[d]["accuracy"],
            "trained": trained[d]["accuracy"],
        }
    n_params = sum(p.numel() for p in vlm.model.visual.parameters())
    return {
        "experiment": "bench vision",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "data": {
            "labels": str(labels),
            "rows": table.height,
            "train_rows": int((~test).sum()),
            "test_rows": int(test.sum()),
            "test_images_scored": int(ok.sum()),
            "unreadable_test_images": before.failures,
            "seed": seed,
        },
        "model": {
            "architecture": vlm.architecture,
            "image_tower_params": int(n_params),
            "embed_dim": vlm.dim,
            "image_size": vlm.image_size,
            "device": vlm.device,
            "precision": vlm.precision,
            "text_tower_locked": bool(vlm.config.get("lock_text", False)),
        },
        "train": {
            **result.summary(),
            **result.extra,
            "minutes_budget": minutes,
            "batch_size": batch_size,
            "lr": lr,
            "schedule": schedule,
            "augment": augment,
            "soft_targets": soft_targets,
        },
        "prompts": {
            "name": "the class name",
            "subtree": "mean embedding of the class name and all names below it",
            "leaf_rollup": "classify among the deepest categories by their names, then take the ancestor",
        },
        "threads": __import__("torch").get_num_threads(),
        "levels": levels,
    }


def add_vision_parser(bench_sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vision`` under the CLI's ``bench`` group."""
    p = bench_sub.add_parser("vision", help="train an open_clip model on (image, title) pairs, zero-shot per level")
    p.add_argument("--images", help="folder the labels' image paths are relative to (default: the labels' folder)")
    p.add_argument("--labels", help="CSV with image, title, category_path ('>'-separated)")
    p.add_argument("--fashion", help="instead of --labels: the fashion_products folder (labels built in a temp dir)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    p.add_argument("--architecture", default=DEFAULT_ARCHITECTURE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--schedule", default=TrainConfig.schedule, help="learning rate after warm-up: cosine or constant")
    p.add_argument("--augment", default=TrainConfig.augment, help="none (flips only) or strong")
    p.add_argument("--soft-targets", type=float, default=TrainConfig.soft_targets, help="0: one-hot title targets")
    p.add_argument("--level-names", help="comma-separated names of the hierarchy levels")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", help="also write the JSON object to this file")
    p.set_defaults(func=cmd_bench_vision)
    return p


def cmd_bench_vision(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        labels, images, level_names = args.labels, args.images, args.level_names
        if args.fashion:
            labels = write_fashion_labels(args.fashion, Path(tmp) / "fashion_labels.csv")
            level_names = level_names or ",".join(FASHION_LEVELS)
        if not labels:
            raise SystemExit("bench vision: give --labels FILE (with --images DIR) or --fashion DIR")
        start = time.perf_counter()
        out = run_bench(
            labels,
            images,
            minutes=args.minutes,
            architecture=args.architecture,
            seed=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            schedule=args.schedule,
            augment=args.augment,
            soft_targets=args.soft_targets,
            level_names=level_names.split(",") if level_names else None,
            device=args.device,
            log=log,
        )
    out["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    out["wall_seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
