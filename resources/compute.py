"""The compute device: CUDA when present, else CPU, overridable in config."""

import dagster as dg

from seestocks_rank.encoders import resolve_device


class ComputeResource(dg.ConfigurableResource):
    """``device``: ``auto`` (CUDA if available, else CPU), ``cpu`` or ``cuda[:N]``."""

    device: str = "auto"

    def torch_device(self) -> str:
        return resolve_device(self.device)

    def faiss_use_gpu(self) -> bool:
        return self.torch_device().startswith("cuda")
