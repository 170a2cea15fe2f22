"""Run every quality protocol of issue 5 on ../shared/data and write bench/results/quality.{json,md}.

    .venv/bin/python -m seestocks_rank.benchmarks.quality [--data DIR] [--seed 7] [--cache-dir DIR]

Protocols: mis-tagged products on Flipkart category pages (10% and 0% noise), sibling confusion with and
without the disambiguation layer (Flipkart, fashion), zero-shot categorization of the Flipkart titles into
the full Google taxonomy (timed), and cross-retailer dedup (PriceRunner clusters, three matching benchmarks).
Embeddings are cached (model version + text hash), so a rerun encodes nothing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


from seestocks_rank.benchmarks.cli import text_encoder
from seestocks_rank.benchmarks.datasets import load_fashion, load_flipkart, load_matching, load_pricerunner
from seestocks_rank.benchmarks.dedup import dedup_benchmark, matching_benchmark
from seestocks_rank.benchmarks.mistag import mistag_benchmark
from seestocks_rank.benchmarks.results import RESULTS_DIR, SHARED_DATA, machine_info, write_result
from seestocks_rank.benchmarks.siblings import google_taxonomy_timing, sibling_benchmark
from seestocks_rank.inputs.catalog import validate_catalog
from seestocks_rank.inputs.taxonomy import Taxonomy


def step(name: str, results: dict, fn, *args, **kwargs) -> None:  # noqa: ANN001
    start = time.perf_counter()
    print(f"[bench] {name} ...", flush=True)
    results[name] = fn(*args, **kwargs)
    print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def markdown(report: dict) -> str:
    r = report["results"]
    m = r["mistagged_flipkart_noise10"]
    m0 = r["mistagged_flipkart_noise0"]
    lines = [
        "# Quality benchmarks (issue 5)",
        "",
        f"- machine: {report['machine']['cpu']}, {report['machine']['cores']} cores",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- total: {report['seconds']:.0f} s",
        "",
        f"## Mis-tagged products, Flipkart ({m['products']} products, {m['pages']} pages, seed {m['seed']})",
        "",
        'A component benchmark: "component" is centroid order + out-of-category filter + rules over each page\'s',
        "tagged products, without retrieval or the fusion ranker. Pages of a real `seestocks-rank run`: real_runs.md.",
        "",
        "| metric | naive 10% noise | component 10% noise | naive 0% | component 0% |",
        "|---|---|---|---|---|",
    ]
    for key in ("pages_with_mistagged@10", "pages_with_mistagged@50", "removal_recall", "false_removal"):
        lines.append(
            f"| {key} | {m['naive'][key]} | {m['pipeline'][key]} | {m0['naive'][key]} | {m0['pipeline'][key]} |"
        )
    ref = m["reference"]
    lines += [
        "",
        f"Reference (10% noise): centroid order without the filter @10 {ref['centroid_order_without_filter@10']}, "
        f"@50 {ref['centroid_order_without_filter@50']}; plain MAD cut k=2: removal recall "
        f"{ref['mad_cut_k2_removal_recall']}, false removal {ref['mad_cut_k2_false_removal']}. "
        f"Removed by signal: {m['removed_by_signal']}.",
        "",
        "## Sibling confusion (test split), tree walk without / with the disambiguation layer",
        "",
        "| catalog | categories | test products | without | with | reduction | exact without / with |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("sibling_flipkart", "sibling_fashion"):
        s = r[name]
        lines.append(
            f"| {name.removeprefix('sibling_')} | {s['categories']} | {s['test_products']} | "
            f"{s['without_layer']['sibling_confusion']} | {s['with_layer']['sibling_confusion']} | "
            f"{s['sibling_confusion_reduction']:.1%} | {s['without_layer']['exact']} / {s['with_layer']['exact']} |"
        )
    g = r["google_taxonomy_flipkart_titles"]
    lines += [
        "",
        f"Full Google taxonomy: {g['titles']} Flipkart titles into {g['categories']} categories (tree walk + layer, "
        f"embeddings cached) in {g['seconds']} s ({g['titles_per_second']} titles/s).",
        "",
        "## Cross-retailer dedup (test splits), pairwise precision / recall / F1",
        "",
        "| data set | business rule P / R / F1 | learned matcher P / R / F1 |",
        "|---|---|---|",
    ]
    for name in ("dedup_pricerunner", "match_walmart-amazon_1", "match_abt-buy", "match_amazon-google"):
        d = r[name]
        rule, matcher = d["rule"], d["matcher"]
        lines.append(
            f"| {name} | {rule['precision']} / {rule['recall']} / {rule['f1']} | "
            f"{matcher['precision']} / {matcher['recall']} / {matcher['f1']} |"
        )
    div = r["dedup_pricerunner"]["retailer_diversity"]
    lines += [
        "",
        f"PriceRunner retailer diversity (largest retailer share in a category page's top 10, mean over pages): "
        f"{div['max_retailer_share@10_before']} before, {div['max_retailer_share@10_after']} after dedup + diversity.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args()
    data = Path(args.data)
    start = time.perf_counter()
    with text_encoder(args.cache_dir) as encoder:
        results: dict = {}

        flipkart_raw, flipkart_tax = load_flipkart(data / "flipkart" / "flipkart_20k_joined.csv.gz")
        for noise in (0.1, 0.0):
            step(
                f"mistagged_flipkart_noise{round(noise * 100)}", results, mistag_benchmark,
                flipkart_raw, flipkart_tax, encoder, noise=noise, seed=args.seed,
            )  # fmt: skip
        flipkart = validate_catalog(flipkart_raw, flipkart_tax.ids, check_images=False).products
        step("sibling_flipkart", results, sibling_benchmark, flipkart, flipkart_tax, encoder)
        fashion, fashion_tax = load_fashion(data / "fashion_products" / "styles.csv.gz")
        step("sibling_fashion", results, sibling_benchmark, fashion, fashion_tax, encoder)
        google = Taxonomy.load(data / "google_taxonomy" / "taxonomy-with-ids.en-US.txt")
        step(
            "google_taxonomy_flipkart_titles",
            results,
            google_taxonomy_timing,
            flipkart["title"].to_list(),
            google,
            encoder,
        )
        step(
            "dedup_pricerunner",
            results,
            dedup_benchmark,
            load_pricerunner(data / "pricerunner" / "pricerunner_aggregate.csv"),
            encoder,
        )
        for name in ("walmart-amazon_1", "abt-buy", "amazon-google"):
            step(f"match_{name}", results, matching_benchmark, load_matching(data / "product_matching" / name), encoder)

    report = {
        "machine": machine_info(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            shlex.quote(a) for a in [".venv/bin/python", "-m", "seestocks_rank.benchmarks.quality", *sys.argv[1:]]
        ),
        "text_model": encoder.model_version,
        "seconds": round(time.perf_counter() - start, 1),
        "results": results,
    }
    write_result("quality", report, markdown(report), args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
