"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

import dagster as dg

from assets import embeddings, features, fusion, inputs, publish, retrieval, rules
from assets.jobs import category_pages_sensor, nightly_job, nightly_schedule, pages_job
from resources import (
    ComputeResource,
    InputsResource,
    ParquetIOManager,
    RankingSettings,
    StorageResource,
    TextModelResource,
    default_data_dir,
)


def build_resources(data_dir: str | None = None, **inputs_overrides: str) -> dict[str, object]:
    """Resources for a data root (default: ``$SEESTOCKS_DATA_DIR`` or ``./data``)."""
    root = data_dir or default_data_dir()
    compute = ComputeResource()
    return {
        "io_manager": ParquetIOManager(root=root),
        "storage": StorageResource(root=root),
        "inputs": InputsResource(data_root=root, **inputs_overrides),
        "compute": compute,
        "text_model": TextModelResource(compute=compute),
        "settings": RankingSettings(),
    }


all_assets = dg.load_assets_from_modules([inputs, embeddings, retrieval, features, fusion, rules, publish])

defs = dg.Definitions(
    assets=all_assets,
    jobs=[nightly_job, pages_job],
    schedules=[nightly_schedule],
    sensors=[category_pages_sensor],
    resources=build_resources(),
)
