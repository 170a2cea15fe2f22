"""Where benchmark results go and what each records of its run: ``bench/results/<name>.json`` and ``.md``
in the project folder, with the machine, date, commit and command."""

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from seestocks_rank.models.device import cpu_model

PROJECT = Path(__file__).resolve().parents[2]
RESULTS_DIR = PROJECT / "bench" / "results"
SHARED_DATA = PROJECT.parent / "shared" / "data"  # the public data sets (../shared/data/README.md)


def machine_info() -> dict[str, object]:
    """Date, processor, cores, GPU, Python, platform, commit and command of this benchmark run."""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:  # noqa: BLE001 - informational only
        gpu = "unknown"
    try:
        git = ("git", "-C", str(PROJECT))
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True).stdout
        if changed.strip():  # the code measured is not the commit's alone
            commit += " + uncommitted changes"
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


def write_result(name: str, result: dict, markdown: str, out: str | Path = RESULTS_DIR) -> Path:
    """``<out>/<name>.json`` (the figures) and ``<out>/<name>.md`` (their write-up); returns the JSON path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out / f"{name}.md").write_text(markdown)
    return out / f"{name}.json"
