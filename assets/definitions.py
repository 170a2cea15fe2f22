"""The code location: every asset, check, job, schedule, sensor and resource of the pipeline."""

import os
from importlib.metadata import version

import dagster as dg

from assets import evaluation, inputs, models, publication, reranking, retrieval, rules, sharding
from assets.automation import (
    abandoned_runs_sensor,
    category_pages_sensor,
    nightly_job,
    nightly_schedule,
    publication_automation,
    run_failure_alert,
)
from assets.sharding import sharded_embeddings_job
from resources import (
    CatalogContextResource,
    ComputeResource,
    CrossEncoderResource,
    EmbeddingStoreIOManager,
    InputsResource,
    OfferMatcherResource,
    ParquetIOManager,
    RankingSettings,
    StorageResource,
    TextModelResource,
    VisionModelResource,
)
from resources.data_root import DataRootResource
from resources.settings import ranking_settings, resource_from_env
from resources.vision import VISION_ENV
from seestocks_rank.store.layout import DataRoot

INPUT_ENV_VARS = {
    "catalog": "SEESTOCKS_CATALOG",
    "taxonomy": "SEESTOCKS_TAXONOMY",
    "category_pages": "SEESTOCKS_CATEGORY_PAGES",
    "judgments": "SEESTOCKS_JUDGMENTS",
    "matching_pairs": "SEESTOCKS_MATCHING_PAIRS",
}
TEXT_MODEL_ENV = "SEESTOCKS_TEXT_MODEL"  # a local sentence-transformers folder, or "hashing" (no transformer)
EXECUTOR_ENV = "SEESTOCKS_EXECUTOR"  # in_process (default: one process per run) or multiprocess


def text_model_resource(compute: ComputeResource) -> TextModelResource:
    """The bi-encoder: ``$SEESTOCKS_TEXT_MODEL`` (a model folder, or ``hashing``), else the bundled MiniLM."""
    choice = os.environ.get(TEXT_MODEL_ENV, "").strip()
    if choice == "hashing":
        return TextModelResource(compute=compute, kind="hashing")
    return TextModelResource(compute=compute, model_path=choice)


def executor() -> dg.ExecutorDefinition:
    """``in_process`` by default: on a small machine one process per run loads each model once and builds
    the catalog context once; ``multiprocess`` runs independent steps side by side on a larger one."""
    choice = os.environ.get(EXECUTOR_ENV, "in_process")
    if choice not in ("in_process", "multiprocess"):
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}: use in_process or multiprocess")
    return dg.in_process_executor if choice == "in_process" else dg.multiprocess_executor


def build_resources(
    data_dir: str | None = None, settings: RankingSettings | None = None, **inputs_overrides: str
) -> dict[str, object]:
    """Resources for a data root (default: ``$SEESTOCKS_DATA_DIR`` or ``./data``). Input files default
    to the embedded demo; ``SEESTOCKS_CATALOG`` etc. (or keyword overrides) point at your own."""
    root = DataRootResource(path=str(DataRoot.at(data_dir).path))
    inputs = {field: os.environ[var] for field, var in INPUT_ENV_VARS.items() if os.environ.get(var)}
    compute = ComputeResource()
    return {
        "io_manager": ParquetIOManager(data_root=root),
        "embedding_store_io": EmbeddingStoreIOManager(data_root=root),
        "storage": StorageResource(data_root=root),
        "inputs": InputsResource(data_root=root, **{**inputs, **inputs_overrides}),
        "compute": compute,
        "text_model": text_model_resource(compute),
        "cross_encoder": CrossEncoderResource(compute=compute, data_root=root),
        "offer_matcher": OfferMatcherResource(compute=compute, data_root=root),
        "settings": settings or ranking_settings(),
        "vision": resource_from_env(VisionModelResource, VISION_ENV),
        "catalog_context": CatalogContextResource(),
    }


# Each module is one group in the UI's asset graph, named after the library's stage it wires.
GROUPS = {
    "inputs": inputs,
    "models": models,
    "retrieval": retrieval,
    "reranking": reranking,
    "rules": rules,
    "publication": publication,
    "evaluation": evaluation,
    "sharding": sharding,
}
OWNERS = ["team:search-ranking"]  # who the UI names for every asset; an asset may declare its own


def _catalogued(stage: str, assets: list) -> list:
    """The group's assets with an owner, a ``stage`` tag (filterable in the UI) and a code version: the
    package release, so the UI marks materializations of an older release as stale."""
    return dg.map_asset_specs(
        lambda spec: spec.replace_attributes(
            owners=spec.owners or OWNERS,
            tags={**spec.tags, "stage": stage},
            code_version=spec.code_version or version("seestocks-rank"),
        ),
        assets,
    )


all_assets = [
    asset
    for name, module in GROUPS.items()
    for asset in _catalogued(name, dg.load_assets_from_modules([module], group_name=name))
]

defs = dg.Definitions(
    assets=all_assets,
    jobs=[nightly_job, sharded_embeddings_job],
    schedules=[nightly_schedule],
    sensors=[
        category_pages_sensor,
        publication_automation,
        run_failure_alert,
        abandoned_runs_sensor,
    ],
    resources=build_resources(),
    executor=executor(),
)
