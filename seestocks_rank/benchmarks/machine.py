"""Machine and run facts recorded with every benchmark result."""

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime

from seestocks_rank.models.device import cpu_model


def machine_info() -> dict[str, object]:
    """Date, processor, cores, GPU, Python, platform, commit and command of this benchmark run."""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:  # noqa: BLE001 - informational only
        gpu = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
