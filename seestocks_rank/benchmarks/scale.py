"""SeeStocks scale on one machine: 565K offers, 1,347 category pages, measured stage by stage.

    .venv/bin/python -m seestocks_rank.benchmarks.scale [--scale 1.0] [--work /tmp/seestocks-scale] [--skip-dagster]

1. A seeded catalog at ``scale`` x SeeStocks' size over the full Google taxonomy
   (:mod:`seestocks_rank.scale_catalog`).
2. The domain code alone, stage by stage, with the weightless hashing encoder standing in for the text
   model (the transformers' throughput is measured separately and extrapolated): total and per-category
   times, the FAISS indexes' build/search time and recall@k against exact search, and a per-page latency
   distribution (features + fusion + rules of one page's candidates, pages run one at a time).
3. The same nightly run through Dagster (one single-run backfill of every page, SQLite instance) in a
   subprocess: wall time, peak RSS, Dagster's overhead against the domain code, then an incremental run
   after 1% of the offers changed.
Writes bench/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.scale_report import markdown, markdown_with_encoders

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from seestocks_rank.benchmarks.results import PROJECT, RESULTS_DIR, SHARED_DATA, machine_info, write_result
from seestocks_rank.inputs.catalog import load_catalog
from seestocks_rank.inputs.judgments import judged_pairs, load_judgments
from seestocks_rank.inputs.pages import load_category_pages
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.models.encoders import HashingEncoder
from seestocks_rank.reranking.categorize import predict_categories
from seestocks_rank.reranking.context import CatalogContext
from seestocks_rank.reranking.features import candidate_features
from seestocks_rank.reranking.out_of_category import OutOfCategoryFilter
from seestocks_rank.reranking.ranker import score_candidates, train_served_ranker
from seestocks_rank.retrieval.centroids import page_centroids, page_prompt, tagged_products
from seestocks_rank.retrieval.embeddings import embed_products
from seestocks_rank.retrieval.index import add_tagged_products, build_index, search_candidates
from seestocks_rank.rules.page_rules import RuleConfig, rank_pages
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.synthetic.scale_catalog import (
    SEESTOCKS_OFFERS,
    SEESTOCKS_PAGES,
    changed_catalog,
    generate_scale_catalog,
)
from seestocks_rank.timing import timed

TAXONOMY = SHARED_DATA / "google_taxonomy" / "taxonomy-with-ids.en-US.txt"
CANDIDATES = 200
SCRATCH = ("data", "dagster_home", "domain-embeddings")  # what the benchmark writes under --work, removed first
INDEX_KINDS = ("flat", "ivf", "hnsw")


def peak_rss_gb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def recall(found: pl.DataFrame, exact: pl.DataFrame) -> float:
    hits = found.join(exact, on=["category_id", "offer_id"], how="semi").height
    return hits / max(exact.height, 1)


def run_domain(inputs: Path, work: Path, index_kinds: tuple[str, ...], sample_pages: int) -> dict[str, object]:
    """Every stage of the nightly run, timed, in one process without Dagster."""
    t: dict[str, float] = {}
    encoder = HashingEncoder()
    with timed(t, "load_taxonomy_pages_s"):
        tree = Taxonomy.load(TAXONOMY)
        pages = load_category_pages(inputs / "category_pages.csv", tree)
    with timed(t, "load_catalog_s"):
        loaded = load_catalog(inputs / "catalog.parquet", tree.ids, check_images=False)
        catalog = loaded.products
    store_root = work / "domain-embeddings"
    with timed(t, "encoder_hashing_titles_s"):
        run = embed_products(catalog, encoder, store_root, EmbeddingStore.open(store_root))
    with timed(t, "embedding_store_commit_s"):
        run.store.commit()
    store = EmbeddingStore.open(store_root)
    with timed(t, "predicted_categories_s"):
        products = catalog.select("offer_id", "title", "category_id")
        predicted = predict_categories(products, store.vectors("text", products.get_column("offer_id")), tree, encoder)
    prompts = encoder.encode([page_prompt(p) for p in pages.get_column("path").to_list()])
    with timed(t, "taxonomy_centroids_s"):
        centroids = page_centroids(pages, tree, catalog, store, prompts)
    retrieval: dict[str, dict[str, float]] = {}
    candidates_by_kind: dict[str, pl.DataFrame] = {}
    for kind in index_kinds:  # each index built and searched with every page centroid in one batch
        r: dict[str, float] = {}
        with timed(r, "build_s"):
            index = build_index(store.vectors("fused"), kind=kind, use_gpu=False)
        with timed(r, "search_s"):
            candidates_by_kind[kind] = search_candidates(index, centroids, store.manifest["offer_id"], CANDIDATES)
        del index
        r["search_ms_per_category"] = 1000 * r["search_s"] / pages.height
        r["recall_at_200"] = recall(candidates_by_kind[kind], candidates_by_kind["flat"])
        retrieval[kind] = r
    chosen = min(
        (k for k in index_kinds if retrieval[k]["recall_at_200"] >= 0.95),
        key=lambda k: retrieval[k]["search_s"] + retrieval[k]["build_s"],
    )
    with timed(t, "tagged_s"):  # as the candidate_sets asset: retrieval only adds to the tagged products
        tagged = tagged_products(catalog, centroids.select("category_id"), tree)
        candidates = add_tagged_products(candidates_by_kind[chosen], centroids, tagged, store, CANDIDATES)
    t["candidate_sets_s"] = retrieval[chosen]["build_s"] + retrieval[chosen]["search_s"] + t.pop("tagged_s")
    feature_timings: dict[str, float] = {}
    with timed(t, "cross_encoder_features_s"):
        with timed(feature_timings, "catalog_context_s"):
            scoring = CatalogContext.build(catalog, store, tree, predicted)
        ooc = OutOfCategoryFilter(scoring)
        features = candidate_features(
            candidates, scoring, centroids, out_of_category_filter=ooc, timings=feature_timings
        )
    with timed(t, "fusion_model_s"):
        judgments = load_judgments(inputs / "judgments.csv")
        judged = candidate_features(judged_pairs(judgments, catalog, centroids["category_id"]), scoring, centroids)
        model = train_served_ranker(judged, seed=0).model
    with timed(t, "fused_scores_s"):
        fused = score_candidates(model, features)
    with timed(t, "filtered_rankings_s"):
        ranked = rank_pages(fused, scoring, RuleConfig())
    nightly = [
        "load_catalog_s", "predicted_categories_s", "taxonomy_centroids_s", "candidate_sets_s",
        "cross_encoder_features_s", "fusion_model_s", "fused_scores_s", "filtered_rankings_s",
    ]  # fmt: skip
    per_page = per_page_latency(candidates, scoring, ooc, centroids, model, sample_pages)
    return {
        "offers": catalog.height,
        "quarantined": loaded.quarantine.height,
        "pages": pages.height,
        "candidates": candidates.height,
        "shown": ranked.filter(pl.col("status") == "shown").height,
        "out_of_category": int(features["out_of_category"].sum()),
        "stages_s": t,
        "features_breakdown_s": feature_timings,
        "total_excluding_encoders_s": sum(t[k] for k in nightly),
        "per_category_ms": {k: 1000 * t[k] / pages.height for k in nightly},
        "retrieval": retrieval,
        "index_used": chosen,
        "per_page_latency_ms": per_page,
        "peak_rss_gb": peak_rss_gb(),
    }


def per_page_latency(candidates, scoring, ooc, centroids, model, n: int) -> dict[str, object]:  # noqa: ANN001
    """Features (without the cross-encoder) + fusion + rules for one page's candidates at a time, on a
    seeded sample of pages: the latency a page would see if served alone (the batch amortises better)."""
    pages = centroids["category_id"].sample(min(n, centroids.height), seed=0).to_list()
    stages = {"features": [], "fusion": [], "rules": [], "total": []}
    for page in pages:  # a loop over sampled pages: each page timed alone
        rows = candidates.filter(pl.col("category_id") == page)
        start = time.perf_counter()
        feats = candidate_features(rows, scoring, centroids, out_of_category_filter=ooc)
        mid = time.perf_counter()
        fused = score_candidates(model, feats)
        mid2 = time.perf_counter()
        rank_pages(fused, scoring, RuleConfig())
        end = time.perf_counter()
        for key, value in zip(stages, (mid - start, mid2 - mid, end - mid2, end - start), strict=True):
            stages[key].append(1000 * value)
    return {
        "pages_sampled": len(pages),
        **{f"{k}_median": float(np.median(v)) for k, v in stages.items()},
        **{f"{k}_p95": float(np.percentile(v, 95)) for k, v in stages.items()},
    }


def encoder_throughput(titles: list[str], offers: int, pairs: int) -> dict[str, float]:
    """Titles/s of the MiniLM bi-encoder, pairs/s of the MiniLM cross-encoder (fp32 and int8 when
    available; untrained weights cost the same) and images/s of the default open_clip model (random image
    tower, 64x64 photos), each extrapolated to the whole catalog / every candidate."""
    import tempfile

    from PIL import Image

    from seestocks_rank.models.cross_encoder import CrossEncoder
    from seestocks_rank.models.encoders import SentenceTransformerEncoder
    from seestocks_rank.models.vision import load_vision_model

    out: dict[str, float] = {}
    bi = SentenceTransformerEncoder(device="cpu")
    bi.encode(titles[:64])
    start = time.perf_counter()
    bi.encode(titles[:2000])
    out["bi_encoder_titles_per_s"] = 2000 / (time.perf_counter() - start)
    out["bi_encoder_full_catalog_min"] = offers / out["bi_encoder_titles_per_s"] / 60
    ce = CrossEncoder.from_pretrained(device="cpu")
    queries = ["Tools > Drills > Cordless Drills"] * 1000
    ce.score(queries[:64], titles[:64])
    start = time.perf_counter()
    ce.score(queries, titles[:1000])
    out["cross_encoder_pairs_per_s"] = 1000 / (time.perf_counter() - start)
    out["cross_encoder_all_candidates_min"] = pairs / out["cross_encoder_pairs_per_s"] / 60
    vision = load_vision_model(device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        rng = np.random.default_rng(0)
        for i in range(256):  # a loop over 256 small generated photos
            path = Path(folder) / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)).save(path)
            paths.append(str(path))
        vision.encode_images(paths[:32])
        start = time.perf_counter()
        vision.encode_images(paths)
        out["open_clip_images_per_s"] = 256 / (time.perf_counter() - start)
    out["open_clip_full_catalog_min"] = offers / out["open_clip_images_per_s"] / 60
    return out


def run_dagster(data_dir: Path, home: Path, label: str, *extra: str) -> dict[str, object]:
    """One nightly run through Dagster in a fresh process (``python -m bench.scale_dagster``)."""
    out = data_dir / f"dagster-{label}.json"
    cmd = [sys.executable, "-m", "bench.scale_dagster", str(data_dir), str(home), str(out), *extra]
    subprocess.run(cmd, check=True, cwd=PROJECT)
    return json.loads(out.read_text()) if out.exists() else {}


def full_then_incremental(work: Path, catalog_path: Path, *extra: str) -> dict[str, object]:
    """A full nightly run through Dagster, then one after 1% of the offers changed (same instance)."""
    home = work / "dagster_home"
    full = run_dagster(work / "data", home, "full", *extra)
    catalog = pl.read_parquet(catalog_path)
    changed, n_changed = changed_catalog(catalog, share=0.01, seed=1)
    changed.write_parquet(catalog_path)
    try:
        incremental = {"changed_offers": n_changed, **run_dagster(work / "data", home, "incremental", *extra)}
    finally:
        catalog.write_parquet(catalog_path)  # leave the generated catalog as it was
    incremental["share_of_full_run"] = incremental["nightly_run_s"] / full["nightly_run_s"]
    print(json.dumps({"dagster_full": full, "incremental": incremental}, indent=2), file=sys.stderr)
    return {"dagster_full": full, "incremental": incremental}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--work",
        default="/tmp/seestocks-scale",
        help="scratch folder: its data, dagster_home and domain-embeddings are removed first",
    )
    parser.add_argument("--indexes", default=",".join(INDEX_KINDS))
    parser.add_argument("--sample-pages", type=int, default=100)
    parser.add_argument("--skip-dagster", action="store_true")
    parser.add_argument("--skip-encoders", action="store_true")
    parser.add_argument(
        "--with-encoders",
        action="store_true",
        help="only the Dagster full + incremental runs, with the real MiniLM bi-encoder and int8 cross-encoder "
        "(fine-tuned first for --train-minutes); writes scale_with_encoders.{json,md}",
    )
    parser.add_argument("--train-minutes", type=float, default=1.0)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args()
    work = Path(args.work)
    for scratch in SCRATCH:  # a "full" run that finds the last one's embeddings and caches is not a full run
        shutil.rmtree(work / scratch, ignore_errors=True)
    inputs = work / "data" / "demo"  # the Dagster resources' default input folder under the data root
    n_offers, n_pages = round(SEESTOCKS_OFFERS * args.scale), round(SEESTOCKS_PAGES * args.scale)
    start = time.perf_counter()
    paths = generate_scale_catalog(inputs, Taxonomy.load(TAXONOMY), n_offers=n_offers, n_pages=n_pages)
    result: dict[str, object] = {
        "machine": machine_info(),
        "scale": args.scale,
        "generate_s": time.perf_counter() - start,
        "catalog": str(paths.catalog),
    }
    print(f"generated {n_offers} offers, {n_pages} pages in {result['generate_s']:.1f} s", file=sys.stderr)
    if args.with_encoders:
        run_dagster(work / "data", work / "dagster_home", "train", "--train-cross-encoder", str(args.train_minutes))
        result |= full_then_incremental(work, paths.catalog, "--encoders")
        write_result("scale_with_encoders", result, markdown_with_encoders(result), args.out)
        print(markdown_with_encoders(result))
        return 0
    kinds = tuple(k for k in args.indexes.split(",") if k)
    result["domain"] = run_domain(inputs, work, ("flat", *(k for k in kinds if k != "flat")), args.sample_pages)
    print(json.dumps(result["domain"], indent=2, default=float), file=sys.stderr)
    if not args.skip_encoders:
        titles = pl.read_parquet(paths.catalog, columns=["title"]).get_column("title").to_list()
        result["encoders"] = encoder_throughput(titles, n_offers, result["domain"]["candidates"])
    if not args.skip_dagster:
        result |= full_then_incremental(work, paths.catalog)
        d = result["domain"]
        # the same work outside Dagster: the domain stages plus the (hashing) title encoding both runs do
        same_work = d["total_excluding_encoders_s"] + d["stages_s"]["encoder_hashing_titles_s"]
        same_work += d["stages_s"]["embedding_store_commit_s"]
        result["dagster_overhead_s"] = result["dagster_full"]["nightly_run_s"] - same_work
        result["dagster_overhead_share"] = result["dagster_overhead_s"] / result["dagster_full"]["nightly_run_s"]
    write_result("scale", result, markdown(result), args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
