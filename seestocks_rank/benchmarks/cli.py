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
    add_run_inputs_parser(bench)
