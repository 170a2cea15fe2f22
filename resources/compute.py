"""The compute device: CUDA when present, else CPU, overridable in config."""

import dagster as dg

from seestocks_rank.models.device import resolve_device


class ComputeResource(dg.ConfigurableResource):
    """``device``: ``auto`` (CUDA if available, else CPU), ``cpu`` or ``cuda[:N]``."""

    device: str = "auto"

    def torch_device(self) -> str:
        return resolve_device(self.device)

    def faiss_use_gpu(self) -> bool:
        """FAISS on the GPU when this FAISS build has one to use (faiss-gpu) and the device is CUDA; asks
        FAISS first, so a CPU-only stage does not pay for importing torch (~2 s)."""
        import faiss

        if self.device == "cpu" or faiss.get_num_gpus() == 0:
            return False
        return self.torch_device().startswith("cuda")
