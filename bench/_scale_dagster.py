"""One nightly run of the pipeline through Dagster, timed, for bench/scale.py (run in its own process so
its peak RSS is its own).

    python bench/_scale_dagster.py DATA_DIR DAGSTER_HOME OUT.json

DATA_DIR holds ``demo/`` with the generated inputs; DAGSTER_HOME gets a SQLite instance (kept between the
full and the incremental run). The hashing encoder stands in for the text model and the cross-encoder is
off (``cross_encoder_minutes=0``, no model), as in the domain-only measurement.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from assets.definitions import build_resources, materialize_all_pages  # noqa: E402
from bench.scale import peak_rss_gb  # noqa: E402
from resources import ComputeResource, RankingSettings, TextModelResource  # noqa: E402

TAXONOMY = ROOT.parent / "shared" / "data" / "google_taxonomy" / "taxonomy-with-ids.en-US.txt"


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall seconds per step (asset) of a run, from its event log."""
    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            out[event.step_key] = round(record.timestamp - starts[event.step_key], 3)
    return out


def main() -> int:
    data_dir, home, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():  # the project's instance settings, as `make ui` installs them
        (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    settings = RankingSettings(cross_encoder_minutes=0.0)
    inputs = data_dir / "demo"
    resources = build_resources(
        str(data_dir),
        settings,
        catalog=str(inputs / "catalog.parquet"),
        taxonomy=str(TAXONOMY),
        category_pages=str(inputs / "category_pages.csv"),
        judgments=str(inputs / "judgments.csv"),
    )
    resources["text_model"] = TextModelResource(compute=ComputeResource(), kind="hashing")
    start = time.perf_counter()
    result = materialize_all_pages(instance, resources, log_level="WARNING")
    wall = time.perf_counter() - start
    runs = instance.get_run_records(limit=2)
    nightly = next(r for r in runs if r.dagster_run.job_name == "nightly_rankings")
    report = {
        "success": result.success,
        "wall_s": wall,
        "nightly_run_s": nightly.end_time - nightly.start_time if nightly.end_time and nightly.start_time else None,
        "steps_s": step_seconds(instance, nightly.dagster_run.run_id),
        "peak_rss_gb": peak_rss_gb(),
        "partitions": len(instance.get_dynamic_partitions("category_pages")),
    }
    out.write_text(json.dumps(report, indent=2))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
