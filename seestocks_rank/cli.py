"""``seestocks-rank``: the operations that are not Dagster's own (demo data, one-shot runs, reports)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.writer_lock import WriterBusy

DEFAULT_PAGES_TO_SHOW = ("Peppers", "Tool Bags")


EXIT_FAILED, EXIT_INPUT, EXIT_BUSY = 1, 2, 3  # a run failed; an input file is unusable; another run writes


class CommandError(Exception):
    """A failure the command reports on one line with its exit code."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _root(args: argparse.Namespace) -> DataRoot:
    return DataRoot.at(args.data_dir)


def cmd_generate(args: argparse.Namespace) -> int:
    from seestocks_rank.synthetic.demo import generate_demo

    out = _root(args).demo
    start = time.perf_counter()
    paths = generate_demo(
        out, n_products=args.products, n_retailers=args.retailers, seed=args.seed, images=getattr(args, "images", False)
    )
    print(f"demo written to {paths.root} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from assets.runner import failure_summary, run_pipeline
    from resources import RankingSettings

    root = _root(args)
    settings = RankingSettings(**({} if args.cross_encoder_minutes is None else
                                  {"cross_encoder_minutes": args.cross_encoder_minutes}))  # fmt: skip
    start = time.perf_counter()
    pages = getattr(args, "rank_pages", None)
    result = run_pipeline(root, settings, pages=pages, max_runtime_minutes=args.max_runtime_minutes)
    if not result.success:
        message, input_error = failure_summary(result)
        raise CommandError(EXIT_INPUT if input_error else EXIT_FAILED, f"{message} (run {result.run_id})")
    print(f"pipeline finished in {time.perf_counter() - start:.1f} s; DuckDB: {root.duckdb}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from seestocks_rank.evaluation.report import comparison_report

    report = comparison_report(_root(args), pages=args.page or list(DEFAULT_PAGES_TO_SHOW), k=args.k)
    print(report.text)
    if args.json:
        Path(args.json).write_text(json.dumps(report.metrics, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not (_root(args).demo / "catalog.csv").exists():
        cmd_generate(args)
    cmd_run(args)
    return cmd_report(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from seestocks_rank.evaluation.harness import RelevanceModels, evaluate
    from seestocks_rank.inputs.judgments import load_query_judgments
    from seestocks_rank.models.encoders import SentenceTransformerEncoder

    judgments = load_query_judgments(args.judgments)
    model_dir = Path(args.model) if args.model else _root(args).relevance_models
    models = RelevanceModels.load(model_dir, device=args.device) if model_dir.exists() else None
    if models is None:
        print(f"note: no relevance models in {model_dir}; comparing the untrained rankers only", file=sys.stderr)
    result = evaluate(
        judgments,
        SentenceTransformerEncoder(device=args.device),
        models,
        relevant_min=args.relevant_min,
        irrelevant_max=args.irrelevant_max,
        k=args.k,
    )
    print(json.dumps({"judgments_file": str(args.judgments), "model_dir": str(model_dir), **result}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from seestocks_rank.evaluation.training import train_relevance_models
    from seestocks_rank.inputs.judgments import load_query_judgments
    from seestocks_rank.models.encoders import SentenceTransformerEncoder

    out = Path(args.out) if args.out else _root(args).relevance_models
    summary = train_relevance_models(
        load_query_judgments(args.judgments),
        SentenceTransformerEncoder(device=args.device),
        out,
        cross_encoder_budget_s=args.minutes * 60,
        cross_encoder_folds=args.cross_encoder_folds,
        max_pairs=args.max_pairs,
        max_epochs=args.epochs,
        relevant_min=args.relevant_min,
        irrelevant_max=args.irrelevant_max,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        refit_cross_encoder=args.refit_cross_encoder,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps({"out": str(out), **summary}, indent=2, default=float))
    return 0


def cmd_adapt_homedepot(args: argparse.Namespace) -> int:
    from seestocks_rank.benchmarks.datasets import homedepot_judgments

    judgments = homedepot_judgments(args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        part = judgments.filter(judgments.get_column("split") == split).drop("split")
        part.write_csv(out / f"homedepot_{split}.csv")
        print(f"{out / f'homedepot_{split}.csv'}: {part.height} judgments, {part['query_id'].n_unique()} queries")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seestocks-rank", description=__doc__)
    parser.add_argument("--data-dir", help="data root (default: $SEESTOCKS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--products", type=int, default=20_000)
        p.add_argument("--retailers", type=int, default=8)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--images", action="store_true", help="also draw a product image per product (image path on)")

    def report_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", action="append", help="page name or category id to print (repeatable)")
        p.add_argument("--k", type=int, default=10, help="top-k for the printed pages and metrics")
        p.add_argument("--json", help="also write the metrics to this JSON file")

    gen = sub.add_parser("generate-demo", help="write the seeded demo catalog to <data>/demo")
    demo_options(gen)
    gen.set_defaults(func=cmd_generate)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--cross-encoder-minutes", type=float, help="cross-encoder fine-tuning budget (default: the settings')"
        )
        p.add_argument(
            "--max-runtime-minutes",
            type=float,
            default=float(os.environ.get("SEESTOCKS_MAX_RUNTIME_MINUTES", "300")),
            help="stop the run after this long, 0: no limit (default: $SEESTOCKS_MAX_RUNTIME_MINUTES or 300)",
        )

    run = sub.add_parser("run", help="materialize all assets for all category pages (in process)")
    run_options(run)
    run.add_argument(
        "--page",
        dest="rank_pages",
        action="append",
        help="re-rank only this page (a name such as 'Tool Bags', a category id or a partition key; repeatable) "
        "and re-publish: a backfill of selected pages",
    )
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="naive (tagged, cheapest first) versus reranked pages")
    report_options(rep)
    rep.set_defaults(func=cmd_report)
    demo = sub.add_parser("demo", help="generate the demo if missing, run the pipeline, print the report")
    demo_options(demo)
    report_options(demo)
    run_options(demo)
    demo.set_defaults(func=cmd_demo)

    ev = sub.add_parser("evaluate", help="compare rankers on a judgments file (one JSON object)")
    ev.add_argument("--judgments", required=True, help="CSV/Parquet: query_id, query, product_id, title, grade")
    ev.add_argument("--model", help="relevance models folder (default: <data>/models/relevance, the pipeline's)")
    ev.add_argument("--relevant-min", type=float, help="grade at or above which a product is relevant")
    ev.add_argument("--irrelevant-max", type=float, help="grade at or below which a product is irrelevant")
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=cmd_evaluate)
    tr = sub.add_parser("train", help="fine-tune the cross-encoder and train the fusion models on judgments")
    tr.add_argument("--judgments", required=True)
    tr.add_argument("--out", help="output folder (default: <data>/models/relevance)")
    tr.add_argument("--minutes", type=float, default=30.0, help="cross-encoder training budget")
    tr.add_argument("--epochs", type=float, default=3.0, help="cross-encoder epochs at most")
    tr.add_argument("--max-pairs", type=int, help="train the cross-encoder on at most this many pairs")
    tr.add_argument(
        "--cross-encoder-folds",
        type=int,
        default=1,
        help="K >= 2: train K out-of-fold cross-encoders (--minutes shared among them) so the fusion trains on all "
        "queries, and serve their ensemble; 1 (default): one cross-encoder on 80%% of the queries",
    )
    tr.add_argument(
        "--relevant-min",
        type=float,
        help="grade at or above which a product is relevant, for the fusion's selection (default: top quarter)",
    )
    tr.add_argument(
        "--irrelevant-max",
        type=float,
        help="grade at or below which a product is irrelevant, for the fusion's selection (default: bottom quarter)",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")
    from seestocks_rank.models.cross_encoder import TRAIN_PRECISIONS

    tr.add_argument(
        "--precision",
        choices=TRAIN_PRECISIONS,
        default="auto",
        help="cross-encoder training autocast: auto = bfloat16 where the CPU/GPU computes it natively, else float32",
    )
    tr.add_argument(
        "--refit-cross-encoder",
        action="store_true",
        help="after the fusion is chosen, fine-tune the served cross-encoder again on all queries (a second "
        "--minutes budget; not with --cross-encoder-folds)",
    )
    tr.set_defaults(func=cmd_train)
    ad = sub.add_parser("adapt-homedepot", help="Home Depot train.csv.zip -> judgments files (fixed TRAIN/TEST)")
    ad.add_argument("--source", required=True)
    ad.add_argument("--out", required=True)
    ad.set_defaults(func=cmd_adapt_homedepot)
    bench = sub.add_parser("bench", help="benchmarks and experiments (one JSON object each)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    from seestocks_rank.benchmarks.vision import add_vision_parser

    add_vision_parser(bench_sub)
    from seestocks_rank.benchmarks.cli import add_bench_parsers

    add_bench_parsers(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        error, code = str(exc), exc.exit_code
    except InputError as exc:
        error, code = str(exc), EXIT_INPUT
    except WriterBusy as exc:
        error, code = str(exc), EXIT_BUSY
    print(f"seestocks-rank: error: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
