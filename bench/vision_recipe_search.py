"""Recipe search for ``bench vision`` on a validation split of the TRAIN 80% only (the test 20% is never read).

The bench's seeded split (seed 0) gives the train 80%; a second seeded split (seed 1) of it holds out 20% for
validation. The model trains on the rest for ``steps`` steps and every 50 steps the validation photos are
classified zero-shot among the article types (leaf-name prompts, plain and ``a photo of {}``; levels 1-2 by
roll-up), which gives the validation curve. One JSON file per recipe::

    PYTHONPATH=. python bench/vision_recipe_search.py NAME '{"steps": 400, "lr": 1e-3}' OUT_DIR [FASHION_DIR]

The JSON holds ``TrainConfig`` fields (plus ``steps``); omitted fields take ``TrainConfig``'s defaults.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from seestocks_rank.benchmarks.vision import level_labels, read_labels, write_fashion_labels
from seestocks_rank.models.vision import load_vision_model
from seestocks_rank.models.vlm_training import TrainConfig, train_contrastive
from seestocks_rank.splits import seeded_split

TEMPLATES = ("{}", "a photo of {}")


def main(name: str, config: dict, out_dir: Path, fashion: str) -> dict:
    torch.set_num_threads(1)
    steps = int(config.pop("steps", 400))
    labels = write_fashion_labels(fashion, out_dir / "fashion_labels.csv")
    table = read_labels(labels)
    trainval = table.filter(~pl.Series(seeded_split(table.height, 0)))  # the bench's train 80%
    val = seeded_split(trainval.height, 1)
    train, valid = trainval.filter(~pl.Series(val)), trainval.filter(pl.Series(val))
    leaves = sorted(set(trainval.get_column("category_path").to_list()))
    valid_paths = valid.get_column("category_path").to_list()
    vlm = load_vision_model("rn-mini-minilm", None, device="cpu", precision="fp32", seed=0)
    prompts = {t: vlm.encode_texts([t.format(leaf.rsplit(" > ", 1)[-1]) for leaf in leaves]) for t in TEMPLATES}
    curve: list[dict] = []
    start = time.perf_counter()

    def evaluate(msg: str) -> None:  # called by train_contrastive's log every 50 steps
        vlm.model.eval()
        vectors = vlm.encode_images(valid.get_column("image").to_list()).vectors
        row: dict = {"step": int(msg.split()[1]), "seconds": round(time.perf_counter() - start)}
        for template, mat in prompts.items():
            pred = [leaves[i] for i in (vectors @ mat.T).argmax(1)]
            for depth in (1, 2, 3):
                hits = [
                    a == b for a, b in zip(level_labels(pred, depth), level_labels(valid_paths, depth), strict=True)
                ]
                row[f"{template}|level{depth}"] = round(float(np.mean(hits)), 4)
        vlm.model.train()
        vlm.model.text.eval()
        curve.append(row)
        print(name, msg, "| valid articleType", row["{}|level3"], flush=True)

    result = train_contrastive(
        vlm,
        train.get_column("image").to_list(),
        train.get_column("title").to_list(),
        TrainConfig(minutes=30, max_steps=steps, **config),
        log=evaluate,
    )
    out = {
        "name": name,
        "config": config,
        "steps": steps,
        "train_rows": train.height,
        "valid_rows": valid.height,
        "train": {**result.summary(), **result.extra},
        "curve": curve,
        "final": curve[-1] if curve else None,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[3])
    target.mkdir(parents=True, exist_ok=True)
    main(
        sys.argv[1],
        json.loads(sys.argv[2]),
        target,
        sys.argv[4] if len(sys.argv) > 4 else "../shared/data/fashion_products",
    )
