"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

import os

import dagster as dg

from assets import evaluation, inputs, models, publication, reranking, retrieval, rules, sharding
from assets.automation import category_pages_sensor, nightly_job, nightly_schedule, pages_job
from assets.sharding import sharded_embeddings_job
from resources import (
    ComputeResource,
    CrossEncoderResource,
    EmbeddingStoreIOManager,
    InputsResource,
    ParquetIOManager,
    RankingSettings,
    StorageResource,
    TextModelResource,
    VisionModelResource,
    default_data_dir,
)

INPUT_ENV_VARS = {
    "catalog": "SEESTOCKS_CATALOG",
    "taxonomy": "SEESTOCKS_TAXONOMY",
    "category_pages": "SEESTOCKS_CATEGORY_PAGES",
    "judgments": "SEESTOCKS_JUDGMENTS",
}


def build_resources(
    data_dir: str | None = None, settings: RankingSettings | None = None, **inputs_overrides: str
) -> dict[str, object]:
    """Resources for a data root (default: ``$SEESTOCKS_DATA_DIR`` or ``./data``). Input files default
    to the embedded demo; ``SEESTOCKS_CATALOG`` etc. (or keyword overrides) point at your own."""
    root = data_dir or default_data_dir()
    inputs = {field: os.environ[var] for field, var in INPUT_ENV_VARS.items() if os.environ.get(var)}
    compute = ComputeResource()
    return {
        "io_manager": ParquetIOManager(root=root),
        "embedding_store_io": EmbeddingStoreIOManager(root=root),
        "storage": StorageResource(root=root),
        "inputs": InputsResource(data_root=root, **{**inputs, **inputs_overrides}),
        "compute": compute,
        "text_model": TextModelResource(compute=compute),
        "cross_encoder": CrossEncoderResource(compute=compute, data_root=root),
        "settings": settings or RankingSettings(),
        "vision": VisionModelResource(),
    }


all_assets = dg.load_assets_from_modules(
    [inputs, models, retrieval, reranking, rules, publication, evaluation, sharding]
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[nightly_job, pages_job, sharded_embeddings_job],
    schedules=[nightly_schedule],
    sensors=[category_pages_sensor],
    resources=build_resources(),
)
