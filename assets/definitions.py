"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

import os

import dagster as dg

from assets import embeddings, features, fusion, inputs, publish, relevance, retrieval, rules, sharded, vision
from assets.jobs import all_pages_run_request, category_pages_sensor, nightly_job, nightly_schedule, pages_job
from assets.sharded import sharded_embeddings_job
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
    [inputs, embeddings, retrieval, features, fusion, rules, publish, relevance, vision, sharded]
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[nightly_job, pages_job, sharded_embeddings_job],
    schedules=[nightly_schedule],
    sensors=[category_pages_sensor],
    resources=build_resources(),
)


def materialize_all_pages(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    *,
    raise_on_error: bool = True,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Run in process what the nightly schedule launches: sync the category pages (dynamic partitions),
    then one run of every asset over the whole page range."""
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    sync = defs.resolve_job_def("sync_category_pages").execute_in_process(
        instance=instance, resources=resources, raise_on_error=raise_on_error, run_config=run_config
    )
    if not sync.success:
        return sync
    request = all_pages_run_request(instance)
    if isinstance(request, dg.SkipReason):
        raise RuntimeError(request.skip_message)
    return defs.resolve_job_def("nightly_rankings").execute_in_process(
        instance=instance,
        resources=resources,
        tags=request.tags,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )
