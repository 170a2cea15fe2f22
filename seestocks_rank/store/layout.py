"""The data root: every folder and file the pipeline reads or writes under it, named once.

One data root holds a deployment's inputs (the embedded demo), outputs and state. It is
``$SEESTOCKS_DATA_DIR``, else ``./data`` in the working directory, for the command line and the Dagster
code location alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SEESTOCKS_DATA_DIR"


def default_data_root() -> Path:
    """``$SEESTOCKS_DATA_DIR``, else ``./data`` in the working directory (absolute)."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / "data").resolve()


@dataclass(frozen=True)
class DataRoot:
    """Paths under one data root (nothing is created until a writer needs it)."""

    path: Path

    @classmethod
    def at(cls, path: str | Path | None = None) -> DataRoot:
        """The data root at ``path``; empty or None: :func:`default_data_root`."""
        return cls(Path(path).resolve() if path else default_data_root())

    @property
    def tables(self) -> Path:
        """Parquet tables, one file or one folder of partition batches per asset."""
        return self.path / "tables"

    @property
    def embeddings(self) -> Path:
        """The product embedding store (chunks and manifest)."""
        return self.path / "embeddings"

    @property
    def embedding_shards(self) -> Path:
        """One embedding store per shard of the sharded-embeddings job."""
        return self.path / "embedding_shards"

    @property
    def merged_embeddings(self) -> Path:
        """The shards' stores linked into one."""
        return self.path / "embeddings_merged"

    @property
    def models(self) -> Path:
        return self.path / "models"

    @property
    def relevance_models(self) -> Path:
        """What ``seestocks-rank train`` writes: the cross-encoder and the fusion rankers."""
        return self.models / "relevance"

    @property
    def cross_encoder(self) -> Path:
        """The cross-encoder the pipeline serves."""
        return self.relevance_models / "cross_encoder"

    @property
    def offer_matcher(self) -> Path:
        """The learned cross-retailer offer matcher the rules serve."""
        return self.models / "offer_matcher"

    @property
    def offer_pair_scores(self) -> Path:
        """Every candidate offer pair's match probability, reused while both offers and the matcher are unchanged."""
        return self.models / "offer_pair_scores.parquet"

    @property
    def fusion_models(self) -> Path:
        """The pipeline's fusion models, one folder per version."""
        return self.models / "fusion"

    @property
    def vision_models(self) -> Path:
        """Fine-tuned vision-language checkpoints, one folder per version."""
        return self.models / "vlm"

    @property
    def cache(self) -> Path:
        """Model outputs kept between runs (cross-encoder scores, text vectors)."""
        return self.path / "cache"

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    @property
    def alerts(self) -> Path:
        """Run failures recorded for operators."""
        return self.path / "alerts"

    @property
    def duckdb(self) -> Path:
        """The analysts' DuckDB file."""
        return self.path / "seestocks.duckdb"

    @property
    def demo(self) -> Path:
        """The embedded demo's input files (the default inputs)."""
        return self.path / "demo"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance, when ``$DAGSTER_HOME`` is not set."""
        return self.path / "dagster_home"
