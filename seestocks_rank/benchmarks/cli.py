"""The ``seestocks-rank bench`` subcommands for the quality protocols."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from seestocks_rank.benchmarks.dedup import dedup_benchmark
from seestocks_rank.benchmarks.mistag import mistag_benchmark
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.encoders import TextEncoder


# ---------------------------------------------------------------------------- embeddings cache
class CachedEncoder:
    """Wraps a :class:`TextEncoder`; vectors are cached on disk keyed by model version and text hash."""

    def __init__(self, encoder: TextEncoder, cache_dir: str | Path):
        self.encoder = encoder
        self.model_version = encoder.model_version
        self.dim = encoder.dim
        safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", encoder.model_version)
        self.path = Path(cache_dir) / f"{safe}.npz"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        if self.path.exists():
            with np.load(self.path) as data:
                self._vectors = data["vectors"]
                self._index = {k: i for i, k in enumerate(data["keys"].tolist())}
        self.encoded = 0
        self._unsaved = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = list(dict.fromkeys(k_t for k_t in zip(keys, texts, strict=True) if k_t[0] not in self._index))
        if todo:
            fresh = self.encoder.encode([t for _, t in todo])
            start = len(self._vectors)
            self._vectors = np.concatenate([self._vectors, fresh.astype(np.float32)])
            self._index.update({k: start + i for i, (k, _) in enumerate(todo)})
            self.encoded += len(todo)
            self._unsaved += len(todo)
            if self._unsaved >= 5_000:  # big batches are worth persisting at once; call save() at the end
                self.save()
        return self._vectors[[self._index[k] for k in keys]] if keys else self._vectors[:0]

    def save(self) -> None:
        keys = np.array(sorted(self._index, key=self._index.__getitem__))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=self._vectors)
        tmp.replace(self.path)
        self._unsaved = 0


# ---------------------------------------------------------------------------- CLI handlers
def default_cache_dir() -> Path:
    """``$SEESTOCKS_CACHE_DIR`` or ``/tmp/seestocks-rank-cache``: where benchmark embeddings are cached."""
    import os
    import tempfile

    return Path(os.environ.get("SEESTOCKS_CACHE_DIR") or Path(tempfile.gettempdir()) / "seestocks-rank-cache")


def text_encoder(cache_dir: str | Path | None = None) -> CachedEncoder:
    """MiniLM (offline weights) behind the embeddings cache."""
    from seestocks_rank.models.encoders import SentenceTransformerEncoder

    return CachedEncoder(SentenceTransformerEncoder(), cache_dir or default_cache_dir())


def cmd_bench_mistagged(args: argparse.Namespace) -> int:
    """``seestocks-rank bench mistagged``: print the mis-tag protocol's figures as one JSON object."""
    from seestocks_rank.inputs.files import read_table

    encoder = text_encoder(args.cache_dir)
    result = mistag_benchmark(
        read_table(args.catalog),
        Taxonomy.load(args.taxonomy),
        encoder,
        noise=args.noise,
        seed=args.seed,
        min_page_products=args.min_page_products,
    )
    encoder.save()
    print(json.dumps(result))
    return 0


def cmd_bench_dedup(args: argparse.Namespace) -> int:
    """``seestocks-rank bench dedup``: print grouping P/R/F1 (rule and matcher) as one JSON object."""
    from seestocks_rank.inputs.files import read_table

    offers = read_table(args.offers)
    encoder = text_encoder(args.cache_dir)
    result = dedup_benchmark(offers, encoder)
    encoder.save()
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
