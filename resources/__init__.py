"""Dagster resources: where data lives, which models to load, which device to compute on."""

from resources.catalog_context import CatalogContextResource
from resources.compute import ComputeResource
from resources.data_root import DataRootResource, InputsResource, StorageResource
from resources.io_manager import EmbeddingStoreIOManager, ParquetIOManager
from resources.models import CrossEncoderResource, OfferMatcherResource, TextModelResource
from resources.settings import RankingSettings
from resources.vision import VisionModelResource

__all__ = [
    "OfferMatcherResource",
    "CatalogContextResource",
    "ComputeResource",
    "CrossEncoderResource",
    "DataRootResource",
    "EmbeddingStoreIOManager",
    "InputsResource",
    "ParquetIOManager",
    "RankingSettings",
    "StorageResource",
    "TextModelResource",
    "VisionModelResource",
]
