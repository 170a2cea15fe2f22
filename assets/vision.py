"""The vision-language model fine-tuned on the catalog's (image, title) pairs."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from assets._metadata import timed
from resources import StorageResource, VisionModelResource
from seestocks_rank.vision import architecture_name
from seestocks_rank.vlm_training import (
    CHECKPOINT_FILE,
    LOSS_CURVE_FILE,
    META_FILE,
    save_training,
    train_contrastive,
    training_version,
)

RETRIEVAL = "retrieval"
REGISTRY_SCHEMA = {
    "version": pl.String,
    "status": pl.String,
    "path": pl.String,
    "architecture": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
    "metrics": pl.String,
}


def _row(**values: object) -> pl.DataFrame:
    return pl.DataFrame({k: [values.get(k)] for k in REGISTRY_SCHEMA}, schema=REGISTRY_SCHEMA)


def _png_markdown(path: Path) -> dg.MetadataValue:
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![training loss](data:image/png;base64,{data})\n\n`{path}`")


@dg.asset(group_name=RETRIEVAL, kinds={"pytorch", "parquet"})
def vlm_checkpoint(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    vision: VisionModelResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """open_clip fine-tuned contrastively on the catalog's (image, title) pairs, from ``checkpoint_path`` or
    from random initialisation, saved under ``models/vlm/<version>/`` (the version hashes the pairs, the
    architecture, the start checkpoint and the training settings, so an unchanged catalog reuses it).

    One registry row: ``status`` is ``trained``, ``reused``, ``configured`` (fine-tuning off: the configured
    checkpoint as is) or ``skipped`` (no images, or the image path is off); ``path`` is what
    ``product_embeddings`` loads (null: text only)."""
    arch = architecture_name(vision.architecture)
    if not vision.enabled_for(catalog):
        context.add_output_metadata({"status": "skipped", "reason": f"mode={vision.mode}, no image paths in catalog"})
        return _row(status="skipped", architecture=arch)
    if not vision.fine_tune:
        path = vision.checkpoint_path or None
        context.add_output_metadata({"status": "configured", "path": str(path)})
        return _row(status="configured", path=path, architecture=arch, version=vision.model(path).model_version)

    pairs = (
        catalog.filter(pl.col("image_path").is_not_null()).unique(["image_path", "title"]).sort("image_path", "title")
    )
    paths, titles = pairs.get_column("image_path").to_list(), pairs.get_column("title").to_list()
    config = vision.train_config()
    version = training_version(arch, vision.checkpoint_path or None, paths, titles, config)
    folder = storage.models_dir / "vlm" / version
    checkpoint = folder / CHECKPOINT_FILE
    if checkpoint.exists() and (folder / META_FILE).exists():
        meta = json.loads((folder / META_FILE).read_text())
        context.add_output_metadata(
            {
                "status": "reused",
                "version": version,
                "path": dg.MetadataValue.path(str(checkpoint)),
                "loss_curve": _png_markdown(folder / LOSS_CURVE_FILE),
                "train": dg.MetadataValue.json(meta.get("train", {})),
            }
        )
        return _row(version=version, status="reused", path=str(checkpoint), architecture=arch,
                    trained_at=datetime.now(UTC), metrics=json.dumps(meta.get("train", {})))  # fmt: skip

    model = vision.model(vision.checkpoint_path or None, training=True).loaded
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        result = train_contrastive(model, paths, titles, config, log=context.log.info)
    save_training(
        model,
        result,
        folder,
        architecture=vision.architecture,
        meta={"version": version, "start_checkpoint": vision.checkpoint_path or None, "pairs": len(paths)},
    )
    summary = result.summary()
    context.add_output_metadata(
        {
            "status": "trained",
            "version": version,
            "path": dg.MetadataValue.path(str(checkpoint)),
            "loss_curve": _png_markdown(folder / LOSS_CURVE_FILE),
            "train": dg.MetadataValue.json(summary),
            "device": model.device,
            **timings,
        }
    )
    return _row(version=version, status="trained", path=str(checkpoint), architecture=arch,
                trained_at=datetime.now(UTC), metrics=json.dumps(summary))  # fmt: skip
