"""Dagster resources: where data lives, which models to load, which device to compute on."""

from resources.compute import ComputeResource
from resources.data_root import InputsResource, StorageResource, default_data_dir
from resources.io_manager import EmbeddingStoreIOManager, ParquetIOManager
from resources.models import CrossEncoderResource, TextModelResource
from resources.settings import RankingSettings
from resources.vision import VisionModelResource

__all__ = [
    "ComputeResource",
    "CrossEncoderResource",
    "EmbeddingStoreIOManager",
    "InputsResource",
    "ParquetIOManager",
    "RankingSettings",
    "StorageResource",
    "TextModelResource",
    "VisionModelResource",
    "default_data_dir",
]
