"""``seestocks-rank``: the embedded demo, command-line runs and backfills, reports, relevance training and
evaluation, and the benchmarks. Global options (``--data-dir``, ``--log-level``) go before or after the
command. Exit codes: 0 done, 1 a run failed, 2 an input file is unusable, 3 another run writes the data root.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.store.layout import DataRoot
from seestocks_rank.store.writer_lock import WriterBusy

DEFAULT_PAGES_TO_SHOW = ("Peppers", "Tool Bags")
EXIT_FAILED, EXIT_INPUT, EXIT_BUSY = 1, 2, 3  # a run failed; an input file is unusable; another run writes
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class CommandError(Exception):
    """A failure the command reports on one line with its exit code."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _root(args: argparse.Namespace) -> DataRoot:
    return DataRoot.at(args.data_dir)


def _emit(args: argparse.Namespace, text: str, data: dict) -> None:
    """The command's result: ``data`` as one JSON object with ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def cmd_generate(args: argparse.Namespace) -> int:
    from seestocks_rank.synthetic.demo import generate_demo

    start = time.perf_counter()
    paths = generate_demo(
        _root(args).demo, n_products=args.products, n_retailers=args.retailers, seed=args.seed, images=args.images
    )
    seconds = time.perf_counter() - start
    print(f"demo written to {paths.root} in {seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from resources.settings import ranking_settings, resource_from_env
    from resources.vision import VISION_ENV, VisionModelResource

    root = _root(args)
    overrides = {} if args.cross_encoder_minutes is None else {"cross_encoder_minutes": args.cross_encoder_minutes}
    try:
        settings = ranking_settings(**overrides)
        resource_from_env(VisionModelResource, VISION_ENV)
    except ValueError as error:  # before the code location loads them too
        raise CommandError(EXIT_INPUT, str(error)) from error
    from assets.runner import RunTimedOut, failure_summary, run_pipeline

    start = time.perf_counter()
    try:
        result = run_pipeline(
            root,
            settings,
            pages=getattr(args, "rank_pages", None),
            max_runtime_minutes=args.max_runtime_minutes,
            log_level=args.log_level,
        )
    except RunTimedOut as error:  # raised outside a step: the run stopped where it was
        raise CommandError(EXIT_FAILED, f"{error}; the last publication is kept") from error
    if not result.success:
        message, input_error = failure_summary(result)
        raise CommandError(EXIT_INPUT if input_error else EXIT_FAILED, f"{message} (run {result.run_id})")
    seconds = time.perf_counter() - start
    data = {"run_id": result.run_id, "seconds": round(seconds, 1), "duckdb": str(root.duckdb)}
    if args.command == "demo":  # the report follows: the run's line goes to the log stream
        print(f"pipeline finished in {seconds:.1f} s; DuckDB: {root.duckdb}", file=sys.stderr)
    else:
        _emit(args, f"pipeline finished in {seconds:.1f} s; DuckDB: {root.duckdb}", data)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from seestocks_rank.evaluation.report import comparison_report

    root = _root(args)
    report = comparison_report(root, pages=args.page or list(DEFAULT_PAGES_TO_SHOW), k=args.k)
    if args.html is not None:
        from seestocks_rank.evaluation.page_report import write_page_reports

        folder = Path(args.html) if args.html else root.reports / "pages"
        written = write_page_reports(root.duckdb, folder, pages=args.page).files
        print(f"{len(written) - 1} page report(s) and the index in {folder}", file=sys.stderr)
    _emit(args, report.text, report.metrics)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from seestocks_rank.evaluation.run_score import score_run

    root = _root(args)
    duckdb_path = Path(args.duckdb) if args.duckdb else root.duckdb
    result = score_run(duckdb_path, args.truth, ks=tuple(args.k or (10, 50)), pages_path=args.pages)
    lines = [f"run {result['run_id']}: {result['pages']} pages, {result['offers_with_truth']} offers with truth"]
    for name in ("naive", "pipeline"):
        lines.append(f"{name:>8}: " + ", ".join(f"{key} {value}" for key, value in result[name].items()))
    if "best_single_signal" in result:
        best = result["best_single_signal"]
        figures = result["single_signals"][best]
        lines.append(f"best single signal ({best}): " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    _emit(args, "\n".join(lines), {"duckdb": str(duckdb_path), "truth": str(args.truth), **result})
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
        logging.getLogger(__name__).warning("no relevance models in %s: comparing the untrained rankers", model_dir)
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
        log=logging.getLogger("seestocks_rank.train").info,
    )
    print(json.dumps({"out": str(out), **summary}, indent=2, default=float))
    return 0


def cmd_adapt_homedepot(args: argparse.Namespace) -> int:
    from seestocks_rank.benchmarks.datasets import homedepot_judgments

    judgments = homedepot_judgments(args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in ("train", "test"):
        part = judgments.filter(judgments.get_column("split") == split).drop("split")
        part.write_csv(out / f"homedepot_{split}.csv")
        written[str(out / f"homedepot_{split}.csv")] = {
            "judgments": part.height,
            "queries": part["query_id"].n_unique(),
        }
    lines = [f"{path}: {n['judgments']} judgments, {n['queries']} queries" for path, n in written.items()]
    _emit(args, "\n".join(lines), written)
    return 0


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in its help, unless there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    try:
        return version("seestocks-rank")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    # The global options are accepted before the command and after it: every subcommand takes them too,
    # defaulting to "not given" so that a value given before the command is kept.
    def global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
        keep = {} if top else {"default": argparse.SUPPRESS}
        p.add_argument("--data-dir", help="the data root (absent: $SEESTOCKS_DATA_DIR, else ./data)",
                       **({"default": None} if top else keep))  # fmt: skip
        p.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper, help="log detail",
                       **({"default": "INFO"} if top else keep))  # fmt: skip
        p.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="DEBUG",
                       help="same as --log-level DEBUG", **keep)  # fmt: skip

    formatter = _HelpWithDefaults
    parser = argparse.ArgumentParser(prog="seestocks-rank", description=__doc__, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: object, *, json_output: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=formatter)
        global_options(p, top=False)
        if json_output:
            p.add_argument("--json", action="store_true", help="print the result as one JSON object")
        p.set_defaults(func=func)
        return p

    def demo_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--products", type=int, default=20_000, help="offers in the generated catalog")
        p.add_argument("--retailers", type=int, default=8, help="retailers offering them")
        p.add_argument("--seed", type=int, default=0, help="the generator's seed (same seed, same files)")
        p.add_argument("--images", action="store_true", help="also draw a product image per product")

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cross-encoder-minutes", type=float, default=None,
                       help="cross-encoder fine-tuning budget (absent: $SEESTOCKS_SETTINGS, else 1.5)")  # fmt: skip
        p.add_argument("--max-runtime-minutes", type=float,
                       default=float(os.environ.get("SEESTOCKS_MAX_RUNTIME_MINUTES", "300")),
                       help="stop the run after this long, 0: no limit ($SEESTOCKS_MAX_RUNTIME_MINUTES)")  # fmt: skip

    def report_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--page", action="append", help="page name or category id to show (repeatable)")
        p.add_argument("--k", type=int, default=10, help="top-k of the printed pages and of the metrics")
        p.add_argument("--html", nargs="?", const="", default=None, metavar="FOLDER",
                       help="also write the HTML page reports (default folder: <data root>/reports/pages)")  # fmt: skip

    demo_options(command("generate-demo", "write the seeded demo catalog to <data root>/demo", cmd_generate,
                         json_output=False))  # fmt: skip
    run = command("run", "rank every page (or, with --page, backfill those pages) in process", cmd_run)
    run_options(run)
    run.add_argument("--page", dest="rank_pages", action="append", default=None, metavar="PAGE",
                     help="backfill only this page: a name ('Tool Bags'), a category id or a partition key "
                     "(repeatable); then re-publish")  # fmt: skip
    report_options(command("report", "naive (tagged, cheapest first) versus reranked pages", cmd_report))
    score = command("score", "score the published pages against a truth file (true category per product)",
                    cmd_score)  # fmt: skip
    score.add_argument(
        "--truth",
        required=True,
        help="CSV/Parquet: product_id (+ retailer) or offer_id, true_category_id [, cluster_id]",
    )
    score.add_argument("--pages", help="score only these pages (CSV/Parquet with category_id)")
    score.add_argument("--duckdb", help="the published file to score (default: <data root>/seestocks.duckdb)")
    score.add_argument("--k", type=int, action="append", help="page depth of the figures (repeatable; 10 and 50)")
    demo = command("demo", "generate the demo if missing, run the pipeline, print the report", cmd_demo)
    demo_options(demo)
    report_options(demo)
    run_options(demo)

    ev = command("evaluate", "compare rankers on a judgments file (prints one JSON object)", cmd_evaluate,
                 json_output=False)  # fmt: skip
    ev.add_argument("--judgments", required=True, help="CSV/Parquet: query_id, query, product_id, title, grade")
    ev.add_argument("--model", help="relevance models folder (default: <data root>/models/relevance)")
    ev.add_argument("--relevant-min", type=float, help="grade at or above which a product is relevant")
    ev.add_argument("--irrelevant-max", type=float, help="grade at or below which a product is irrelevant")
    ev.add_argument("--k", type=int, default=10, help="cut-off of the metrics")
    ev.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    tr = command("train", "fine-tune the cross-encoder and train the fusion (prints one JSON object)", cmd_train,
                 json_output=False)  # fmt: skip
    tr.add_argument("--judgments", required=True, help="CSV/Parquet: query_id, query, product_id, title, grade")
    tr.add_argument("--out", help="output folder (default: <data root>/models/relevance)")
    tr.add_argument("--minutes", type=float, default=30.0, help="cross-encoder training budget")
    tr.add_argument("--epochs", type=float, default=3.0, help="cross-encoder epochs at most")
    tr.add_argument("--max-pairs", type=int, help="train the cross-encoder on at most this many pairs")
    tr.add_argument("--cross-encoder-folds", type=int, default=1,
                    help="K >= 2: K out-of-fold cross-encoders (--minutes shared), their ensemble served")  # fmt: skip
    tr.add_argument("--relevant-min", type=float, help="relevant grade for the selection (default: top quarter)")
    tr.add_argument("--irrelevant-max", type=float, help="bad grade for the selection (default: bottom quarter)")
    tr.add_argument("--seed", type=int, default=0, help="seed of the splits and the training")
    tr.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    tr.add_argument("--precision", choices=("auto", "bfloat16", "float32"), default="auto",
                    help="training autocast: auto = bfloat16 where the processor computes it natively")  # fmt: skip
    tr.add_argument("--refit-cross-encoder", action="store_true",
                    help="after the fusion is chosen, train the served cross-encoder again on all queries")  # fmt: skip
    ad = command("adapt-homedepot", "Home Depot train.csv.zip -> judgments files (fixed TRAIN/TEST)",
                 cmd_adapt_homedepot)  # fmt: skip
    ad.add_argument("--source", required=True, help="the Home Depot train.csv or train.csv.zip")
    ad.add_argument("--out", required=True, help="folder for homedepot_train.csv and homedepot_test.csv")

    bench = sub.add_parser("bench", help="benchmarks and experiments (one JSON object each)", formatter_class=formatter)
    global_options(bench, top=False)
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    from seestocks_rank.benchmarks.cli import add_bench_parsers
    from seestocks_rank.benchmarks.vision import add_vision_parser

    add_vision_parser(bench_sub)
    add_bench_parsers(bench_sub)
    return parser


def _shown_once(record: logging.LogRecord) -> bool:
    """Inside a run's steps Dagster attaches its handler to the library's logger and prints its lines
    (``managed_python_loggers``): the command's own handler leaves those to it."""
    library = logging.getLogger("seestocks_rank")
    return not (record.name.startswith("seestocks_rank") and library.handlers)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the project's lines at the chosen level; other libraries' (alembic, httpx, ...) only from WARNING, or
    # all of them with --log-level DEBUG
    debug = logging.getLevelName(args.log_level) == logging.DEBUG
    logging.basicConfig(level=args.log_level if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    logging.getLogger("seestocks_rank").setLevel(args.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_shown_once)
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
