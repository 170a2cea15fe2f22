"""The installed FAISS: one distribution owns the ``faiss`` module, the GPU build where it is published."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-cuda")


def installed_faiss() -> list[str]:
    found = []
    for name in FAISS_DISTRIBUTIONS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def test_one_faiss_distribution_owns_the_module() -> None:
    """Two FAISS wheels install the same ``faiss`` package over each other: whichever came last wins, and
    uninstalling the other breaks it. pyproject.toml asks for one, and ``make setup`` removes a stale one."""
    found = installed_faiss()
    assert len(found) == 1, f"several FAISS builds share the faiss module: {found}"
    if sys.platform == "linux" and platform.machine() == "x86_64":
        import faiss

        assert found == ["faiss-gpu"]
        assert hasattr(faiss, "StandardGpuResources")  # the GPU build, whatever the machine has
        assert faiss.get_num_gpus() >= 0
