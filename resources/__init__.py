"""Dagster resources: where data lives, which models to load, which device to compute on."""

from resources.compute import ComputeResource
from resources.io_manager import ParquetIOManager
from resources.models import TextModelResource
from resources.settings import RankingSettings
from resources.storage import InputsResource, StorageResource, default_data_dir

__all__ = [
    "ComputeResource",
    "InputsResource",
    "ParquetIOManager",
    "RankingSettings",
    "StorageResource",
    "TextModelResource",
    "default_data_dir",
]
