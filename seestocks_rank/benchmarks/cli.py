"""The ``seestocks-rank bench`` subcommands for the quality protocols."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seestocks_rank.benchmarks.dedup import dedup_benchmark
from seestocks_rank.benchmarks.mistag import mistag_benchmark
from seestocks_rank.benchmarks.run_inputs import add_run_inputs_parser
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.store.model_cache import CachedTextEncoder, cached


# ---------------------------------------------------------------------------- CLI handlers
def default_cache_dir() -> Path:
    """``$SEESTOCKS_CACHE_DIR`` or ``/tmp/seestocks-rank-cache``: where benchmark embeddings are cached."""
    import os
    import tempfile

    return Path(os.environ.get("SEESTOCKS_CACHE_DIR") or Path(tempfile.gettempdir()) / "seestocks-rank-cache")


@contextmanager
def text_encoder(cache_dir: str | Path | None = None) -> Iterator[CachedTextEncoder]:
    """MiniLM (offline weights) behind the model cache, in ``<cache_dir>/text_vectors.parquet``: a rerun of a
    benchmark encodes nothing."""
    from seestocks_rank.models.encoders import SentenceTransformerEncoder

    path = Path(cache_dir or default_cache_dir()) / "text_vectors.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    with cached(CachedTextEncoder, SentenceTransformerEncoder(), path) as encoder:
        yield encoder


def cmd_bench_mistagged(args: argparse.Namespace) -> int:
    """``seestocks-rank bench mistagged``: print the mis-tag protocol's figures as one JSON object."""
    from seestocks_rank.inputs.files import read_table

    with text_encoder(args.cache_dir) as encoder:
        result = mistag_benchmark(
            read_table(args.catalog),
            Taxonomy.load(args.taxonomy),
            encoder,
            noise=args.noise,
            seed=args.seed,
            min_page_products=args.min_page_products,
        )
    print(json.dumps(result))
    return 0


def cmd_bench_dedup(args: argparse.Namespace) -> int:
    """``seestocks-rank bench dedup``: print grouping P/R/F1 (rule and matcher) as one JSON object."""
    from seestocks_rank.inputs.files import read_table

    offers = read_table(args.offers)
    with text_encoder(args.cache_dir) as encoder:
        result = dedup_benchmark(offers, encoder)
    print(json.dumps(result))
    return 0


def cmd_bench_matching_pairs(args: argparse.Namespace) -> int:
    """``seestocks-rank bench matching-pairs``: write the public training pool in the pair format."""
    from seestocks_rank.benchmarks.matching import public_matching_pairs

    with text_encoder(args.cache_dir) as encoder:
        pool, _ = public_matching_pairs(
            args.matching_dir, args.pricerunner, encoder, include_valid=not args.hold_out_valid
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pool.write_parquet(out) if out.suffix == ".parquet" else pool.write_csv(out)
    counts = _source_counts(pool)
    print(json.dumps({"out": str(out), "pairs": pool.height, "sources": counts}))
    return 0


def _source_counts(pool) -> list[dict]:  # noqa: ANN001 - polars DataFrame
    """Pairs and positives per source of a pairs frame."""
    import polars as pl

    agg = pool.group_by("source").agg(pl.len().alias("pairs"), pl.col("label").cast(pl.Int64).sum().alias("positives"))
    return agg.sort("source").to_dicts()


# F1 of the feature-GBM OfferMatcher (bench/results/quality.md) and of Ditto (RoBERTa, GPU; Li et al. 2020)
GBM_F1 = {"abt-buy": 0.76, "amazon-google": 0.60, "walmart-amazon": 0.58, "pricerunner": 0.46}
DITTO_F1 = {"abt-buy": 0.893, "amazon-google": 0.756, "walmart-amazon": 0.868}
GOAL_F1 = {"abt-buy": 0.85, "amazon-google": 0.70, "walmart-amazon": 0.80, "pricerunner": 0.80, "wdc": 0.60}


def matching_markdown(result: dict) -> str:
    """The short bench/results/matching.md: setting, pool, training, per-set P/R/F1 next to the old GBM and Ditto."""
    r, recipe = result["model"], result["recipe"]
    valid = "held out (threshold tuning only)" if result["pool"]["valid_held_out"] else "in the pool"
    lines = [
        "# Learned offer matcher (PairModel) on public matching sets",
        "",
        f"- date: {result['date']}; machine: {result['machine']}",
        f"- command: `{result['command']}`",
        f"- pool: {result['pool']['pairs']} pairs ("
        + ", ".join(f"{s['source']} {s['pairs']} / {s['positives']} positive" for s in result["pool"]["sources"])
        + f"); DeepMatcher valid splits {valid}",
        f"- training: cross-encoder {r.get('cross_encoder_pairs')} pairs, {r.get('epochs')} epochs, "
        f"{r.get('train_seconds')} s ({r.get('pairs_per_second')} pairs/s), "
        f"max_length {recipe['max_length']}, lr {recipe['learning_rate']}; "
        f"stack {r.get('stack_pairs')} pairs; served threshold {r.get('threshold')}",
        f"- evaluation: {result['evaluation_seconds']} s (int8 cross-encoder on CPU)",
        "",
        "Pair P/R/F1 on the DeepMatcher test splits and the held-out WDC pairs; PriceRunner: grouping (pairwise) "
        "P/R/F1 on the test clusters, the protocol of `bench dedup`. *served*: the model's single threshold "
        "(headline); *tuned*: the F1-best cut on the set's own valid split (only when that split was held out "
        "of training).",
        "",
        "| set | served P | served R | served F1 | tuned F1 | old GBM F1 | Ditto F1 | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["sets"].items():
        s, t = row["served"], row.get("tuned_on_valid")
        lines.append(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | **{s['f1']:.3f}** | "
            f"{'' if t is None else format(t['f1'], '.3f')} | {GBM_F1.get(name, '')} | {DITTO_F1.get(name, '')} "
            f"| {GOAL_F1.get(name, '')} |"
        )
    return "\n".join(lines) + "\n"


def cmd_bench_matcher(args: argparse.Namespace) -> int:
    """``seestocks-rank bench matcher``: train (unless saved) and evaluate the learned offer matcher."""
    import os
    import platform
    import sys
    import time
    from datetime import UTC, datetime

    from seestocks_rank.benchmarks.matching import evaluate_pair_model, public_matching_pairs
    from seestocks_rank.rules.pair_model import MANIFEST, PairModel

    with text_encoder(args.cache_dir) as encoder:
        pool, test_sets = public_matching_pairs(
            args.matching_dir, args.pricerunner, encoder, include_valid=not args.hold_out_valid
        )
    model_dir = Path(args.model_dir)
    recipe = {"max_length": args.max_length, "learning_rate": args.learning_rate, "max_epochs": args.max_epochs}
    if args.train or not (model_dir / MANIFEST).exists():
        model = PairModel.train(
            pool,
            budget_seconds=args.minutes * 60,
            max_epochs=args.max_epochs,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
            seed=args.seed,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        model.save(model_dir, extra={"recipe": recipe, "valid_held_out": args.hold_out_valid})
    else:
        recipe = json.loads((model_dir / MANIFEST).read_text()).get("recipe", recipe)
    model = PairModel.load(model_dir)
    start = time.perf_counter()
    sets = evaluate_pair_model(model, test_sets)
    sources = _source_counts(pool)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
        "command": "seestocks-rank bench matcher " + " ".join(sys.argv[sys.argv.index("matcher") + 1 :])
        if "matcher" in sys.argv
        else "seestocks-rank bench matcher",
        "pool": {"pairs": pool.height, "sources": sources, "valid_held_out": args.hold_out_valid},
        "recipe": recipe,
        "model": model.report,
        "model_version": model.version,
        "evaluation_seconds": round(time.perf_counter() - start, 1),
        "sets": sets,
        "old_gbm_f1": GBM_F1,
        "ditto_f1": DITTO_F1,
    }
    print(json.dumps(result))
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / "matching.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / "matching.md").write_text(matching_markdown(result))
    return 0


def add_bench_parsers(bench: argparse._SubParsersAction) -> None:
    """Register ``mistagged`` and ``dedup`` under the ``bench`` subcommand group."""
    mis = bench.add_parser("mistagged", help="mis-tagged products on category pages: naive versus pipeline")
    mis.add_argument("--catalog", required=True, help="catalog (pipeline format) whose category_id is the truth")
    mis.add_argument("--taxonomy", required=True, help="taxonomy in Google's taxonomy-with-ids text format")
    mis.add_argument("--noise", type=float, default=0.1, help="share of products given a wrong tag")
    mis.add_argument("--seed", type=int, default=7)
    mis.add_argument("--min-page-products", type=int, default=30, help="a page needs this many products")
    mis.add_argument("--cache-dir", help="embeddings cache (default: $SEESTOCKS_CACHE_DIR or a tmp dir)")
    mis.set_defaults(func=cmd_bench_mistagged)
    dedup = bench.add_parser("dedup", help="cross-retailer offer grouping against true clusters")
    dedup.add_argument("--offers", required=True, help="product_id, title, retailer, price, cluster_id [, block]")
    dedup.add_argument("--cache-dir", help="embeddings cache (default: $SEESTOCKS_CACHE_DIR or a tmp dir)")
    dedup.set_defaults(func=cmd_bench_dedup)
    pairs = bench.add_parser("matching-pairs", help="the public offer-matching training pool, in the pair format")
    _matching_arguments(pairs)
    pairs.add_argument("--out", required=True, help="pairs file to write (.csv or .parquet)")
    pairs.set_defaults(func=cmd_bench_matching_pairs)
    matcher = bench.add_parser("matcher", help="train and evaluate the learned offer matcher on public sets")
    _matching_arguments(matcher)
    matcher.add_argument("--model-dir", required=True, help="the matcher folder: loaded if present, else trained")
    matcher.add_argument("--train", action="store_true", help="train (and replace) even if a saved matcher exists")
    matcher.add_argument("--minutes", type=float, default=22.0, help="cross-encoder training budget")
    matcher.add_argument("--max-epochs", type=float, default=3.0)
    matcher.add_argument("--max-length", type=int, default=96, help="tokens per pair")
    matcher.add_argument("--learning-rate", type=float, default=4e-5)
    matcher.add_argument("--seed", type=int, default=0)
    matcher.add_argument("--results-dir", default="bench/results", help="where matching.json and matching.md go")
    matcher.set_defaults(func=cmd_bench_matcher)
    add_run_inputs_parser(bench)


def _matching_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matching-dir", required=True,
                        help="holds abt-buy/, amazon-google/, walmart-amazon_1/, wdc_products_train/")  # fmt: skip
    parser.add_argument("--pricerunner", required=True, help="pricerunner_aggregate.csv")
    parser.add_argument("--hold-out-valid", action="store_true",
                        help="DeepMatcher valid splits out of the pool (a leak-free tuned threshold)")  # fmt: skip
    parser.add_argument("--cache-dir", help="embeddings cache (default: $SEESTOCKS_CACHE_DIR or a tmp dir)")
