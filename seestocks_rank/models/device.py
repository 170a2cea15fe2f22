"""The compute device and what the processor can do: CUDA when present, else the CPU, and the CPU facts
that choose a precision and describe a benchmark's machine."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path


def resolve_device(preference: str = "auto") -> str:
    """Pick the torch device: ``auto`` means CUDA when present, else CPU."""
    import torch

    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available on this machine")
    if preference != "cpu" and not preference.startswith("cuda"):
        raise ValueError(f"unknown device {preference!r}: use 'auto', 'cpu' or 'cuda[:N]'")
    return preference


@cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16). Elsewhere oneDNN emulates
    it and bf16 is slower than fp32."""
    flags = set(_cpuinfo().split())
    return "amx_bf16" in flags or "avx512_bf16" in flags
