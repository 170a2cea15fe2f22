"""One nightly run of the pipeline through Dagster, timed, for seestocks_rank.benchmarks.scale (in its own process so
its peak RSS is its own).

    python -m bench.scale_dagster DATA_DIR DAGSTER_HOME OUT.json [--encoders] [--train-cross-encoder MIN]

DATA_DIR holds ``demo/`` with the generated inputs; DAGSTER_HOME gets the project's instance (its
dagster.yaml; kept between the full and the incremental run). By default the hashing encoder stands in for
the text model and the cross-encoder is off, as in the domain-only measurement. With ``--encoders`` the
run uses the real MiniLM bi-encoder and the int8 cross-encoder found in the data root's model folder;
``--train-cross-encoder MIN`` only fine-tunes that cross-encoder for MIN minutes (a separate cadence
from the nightly run, which then reuses it) and writes no timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import dagster as dg

from assets.automation import all_pages_run_request
from assets.definitions import all_assets, build_resources, defs
from assets.runner import sync_page_partitions
from resources import ComputeResource, RankingSettings, TextModelResource
from seestocks_rank.benchmarks.scale import peak_rss_gb
from seestocks_rank.store.layout import DataRoot

ROOT = Path(__file__).resolve().parents[1]

TAXONOMY = ROOT.parent / "shared" / "data" / "google_taxonomy" / "taxonomy-with-ids.en-US.txt"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# what each step redid, from its materialization metadata
REDONE = {
    "product_embeddings": ("encoded", "reused"),
    "predicted_categories": ("walked",),
    "cross_encoder_features": ("cross_encoder_pairs_scored", "cross_encoder_pairs_reused", "cross_encoder_s"),
}


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


def redone(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """The REDONE metadata of a run's materializations (summed over a multi-partition output's events,
    which all carry the same values, so taken once)."""
    out: dict[str, float] = {}
    for asset, keys in REDONE.items():
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        if records and records[0].run_id == run_id:
            metadata = records[0].asset_materialization.metadata
            out |= {f"{asset}.{k}": metadata[k].value for k in keys if k in metadata}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("home", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--encoders", action="store_true")
    parser.add_argument("--train-cross-encoder", type=float, default=0.0)
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    if not (args.home / "dagster.yaml").exists():  # the project's instance settings, as `make ui` installs them
        (args.home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(args.home)
    instance = dg.DagsterInstance.get()
    inputs = DataRoot.at(args.data_dir).demo
    resources = build_resources(
        str(args.data_dir),
        RankingSettings(cross_encoder_minutes=args.train_cross_encoder),
        catalog=str(inputs / "catalog.parquet"),
        taxonomy=str(TAXONOMY),
        category_pages=str(inputs / "category_pages.csv"),
        judgments=str(inputs / "judgments.csv"),
    )
    if not args.encoders:
        resources["text_model"] = TextModelResource(compute=ComputeResource(), kind="hashing")
    if args.train_cross_encoder > 0:
        selection = dg.AssetSelection.assets("cross_encoder_model").upstream().required_multi_asset_neighbors()
        trained = dg.materialize(all_assets, selection=selection, instance=instance, resources=resources)
        return 0 if trained.success else 1
    start = time.perf_counter()
    sync_page_partitions(instance, resources["inputs"])  # what the category_pages_sensor does
    launch = time.perf_counter()
    # what the nightly schedule launches: one run over the whole page range (its planned events included)
    result = defs.resolve_job_def("nightly_rankings").execute_in_process(
        instance=instance, resources=resources, tags=all_pages_run_request(instance).tags, run_config=QUIET
    )
    finish = time.perf_counter()
    run_id = result.run_id
    report = {
        "success": result.success,
        "encoders": "MiniLM bi-encoder + int8 cross-encoder" if args.encoders else "hashing, no cross-encoder",
        "sync_pages_s": launch - start,
        "nightly_run_s": finish - launch,
        "steps_s": step_seconds(instance, run_id),
        "redone": redone(instance, run_id),
        "peak_rss_gb": peak_rss_gb(),
        "partitions": len(instance.get_dynamic_partitions("category_pages")),
    }
    args.out.write_text(json.dumps(report, indent=2))
    return 0 if report["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
