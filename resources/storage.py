"""Where the pipeline's inputs and outputs live: one data root (``./data`` or ``SEESTOCKS_DATA_DIR``)."""

import os
from pathlib import Path

import dagster as dg

from seestocks_rank.storage import TableStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> str:
    """``$SEESTOCKS_DATA_DIR``, else ``data/`` in the project root."""
    return os.environ.get("SEESTOCKS_DATA_DIR") or str(PROJECT_ROOT / "data")


class StorageResource(dg.ConfigurableResource):
    """The data root: Parquet tables under ``tables/``, product vectors under ``embeddings/``, models
    under ``models/``, the analysts' DuckDB file at ``seestocks.duckdb``."""

    root: str

    @property
    def store(self) -> TableStore:
        return TableStore(self.root)

    @property
    def duckdb_path(self) -> Path:
        return Path(self.root) / "seestocks.duckdb"

    @property
    def embeddings_dir(self) -> Path:
        return Path(self.root) / "embeddings"

    @property
    def models_dir(self) -> Path:
        return Path(self.root) / "models"


class InputsResource(dg.ConfigurableResource):
    """Input files. Any left empty defaults to the embedded demo under ``<data root>/demo/``.

    - ``catalog``: Parquet or CSV in the catalog contract (see README)
    - ``taxonomy``: Google ``taxonomy-with-ids`` text file
    - ``category_pages``: CSV/Parquet with a ``category_id`` column (the active pages)
    - ``judgments``: CSV/Parquet with ``category_id, product_id, grade``
    """

    data_root: str
    catalog: str = ""
    taxonomy: str = ""
    category_pages: str = ""
    judgments: str = ""

    def _path(self, value: str, demo_name: str) -> Path:
        return Path(value) if value else Path(self.data_root) / "demo" / demo_name

    @property
    def catalog_path(self) -> Path:
        return self._path(self.catalog, "catalog.csv")

    @property
    def taxonomy_path(self) -> Path:
        return self._path(self.taxonomy, "taxonomy.txt")

    @property
    def category_pages_path(self) -> Path:
        return self._path(self.category_pages, "category_pages.csv")

    @property
    def judgments_path(self) -> Path:
        return self._path(self.judgments, "judgments.csv")
