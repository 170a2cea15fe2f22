"""``seestocks-rank``: the operations that are not Dagster's own (demo data, one-shot runs, reports)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_PAGES_TO_SHOW = ("Peppers", "Tool Bags")


def _data_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("SEESTOCKS_DATA_DIR") or Path.cwd() / "data").resolve()


def cmd_generate(args: argparse.Namespace) -> int:
    from seestocks_rank.demo import generate_demo

    out = _data_dir(args.data_dir) / "demo"
    start = time.perf_counter()
    paths = generate_demo(out, n_products=args.products, n_retailers=args.retailers, seed=args.seed)
    print(f"demo written to {paths.root} in {time.perf_counter() - start:.1f} s")
    return 0


def _ensure_dagster_home(data_dir: Path) -> Path:
    """``$DAGSTER_HOME`` or ``<data>/dagster_home`` seeded with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or data_dir / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    project_yaml = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if project_yaml.exists() and not (home / "dagster.yaml").exists():
        shutil.copy(project_yaml, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_pipeline(data_dir: Path) -> None:
    """Materialize every asset for every category page, in process, on the persistent instance
    (so ``dagster dev`` shows the runs and the partitions)."""
    import dagster as dg

    from assets.definitions import build_resources, materialize_all_pages

    _ensure_dagster_home(data_dir)
    with dg.DagsterInstance.get() as instance:
        result = materialize_all_pages(instance, build_resources(str(data_dir)), raise_on_error=False)
    if not result.success:
        raise SystemExit("the pipeline run failed; see the log above")


def cmd_run(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args.data_dir)
    start = time.perf_counter()
    run_pipeline(data_dir)
    print(f"pipeline finished in {time.perf_counter() - start:.1f} s; DuckDB: {data_dir / 'seestocks.duckdb'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from seestocks_rank.report import comparison_report

    report = comparison_report(_data_dir(args.data_dir), pages=args.page or list(DEFAULT_PAGES_TO_SHOW), k=args.k)
    print(report.text)
    if args.json:
        Path(args.json).write_text(json.dumps(report.metrics, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args.data_dir)
    if not (data_dir / "demo" / "catalog.csv").exists():
        cmd_generate(args)
    cmd_run(args)
    return cmd_report(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seestocks-rank", description=__doc__)
    parser.add_argument("--data-dir", help="data root (default: $SEESTOCKS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--products", type=int, default=20_000)
        p.add_argument("--retailers", type=int, default=8)
        p.add_argument("--seed", type=int, default=0)

    def report_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", action="append", help="page name or category id to print (repeatable)")
        p.add_argument("--k", type=int, default=10, help="top-k for the printed pages and metrics")
        p.add_argument("--json", help="also write the metrics to this JSON file")

    gen = sub.add_parser("generate-demo", help="write the seeded demo catalog to <data>/demo")
    demo_options(gen)
    gen.set_defaults(func=cmd_generate)
    run = sub.add_parser("run", help="materialize all assets for all category pages (in process)")
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="naive (tagged, cheapest first) versus reranked pages")
    report_options(rep)
    rep.set_defaults(func=cmd_report)
    demo = sub.add_parser("demo", help="generate the demo if missing, run the pipeline, print the report")
    demo_options(demo)
    report_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
