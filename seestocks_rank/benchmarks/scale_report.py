"""The scale benchmark's write-up: bench/results/scale.md and scale_with_encoders.md from their JSON."""

from __future__ import annotations


def markdown(r: dict) -> str:
    m, d = r["machine"], r["domain"]
    nightly = [k for k in d["per_category_ms"]]
    lines = [
        f"# Scale: {d['offers']:,} offers, {d['pages']:,} category pages",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores, GPU: {m['gpu']}); date {m['date']}; commit {m['git_commit']}.",
        f"Command: `{m['command']}` (scale {r['scale']}).",
        "",
        "Catalog: seeded generator (`seestocks_rank.scale_catalog`) over the full Google taxonomy (5,595 "
        "categories), 14 retailers, 12% near-duplicate offers, 10% coarse tags, 3% mis-tagged, 1% price outliers, "
        "10% stale. Embeddings: the weightless bag-of-words `HashingEncoder` (384-d) stands in for MiniLM, so the "
        "ranking stages see vectors of the right shape and a clustered distribution; the transformers' cost is "
        "measured separately below. The cross-encoder is off in these runs (its cost is per pair, see below).",
        "",
        "## Domain code alone (one process, no Dagster)",
        "",
        "| stage | total s | ms per category (amortised) |",
        "|---|---|---|",
    ]
    for k in nightly:
        lines.append(f"| {k.removesuffix('_s')} | {d['stages_s'][k]:.2f} | {d['per_category_ms'][k]:.2f} |")
    reranking = sum(d["per_category_ms"][k] for k in ("cross_encoder_features_s", "fused_scores_s",
                                                      "filtered_rankings_s"))  # fmt: skip
    lines += [
        f"| **nightly total (excl. encoders)** | **{d['total_excluding_encoders_s']:.1f}** | |",
        "",
        f"Features + fusion + rules (no transformer cross-encoder): **{reranking:.1f} ms per page of "
        f"{d['candidates'] // d['pages']} candidates**, amortised over the batch. Out-of-category filter inside "
        f"features: {d['features_breakdown_s'].get('out_of_category_s', 0):.1f} s. Peak RSS {d['peak_rss_gb']:.2f} GB.",
        "",
        "Per page, scored alone (catalog-wide state built once; pages run one at a time, "
        f"{d['per_page_latency_ms']['pages_sampled']} sampled pages):",
        "",
        "| step | median ms | p95 ms |",
        "|---|---|---|",
    ]
    for k in ("features", "fusion", "rules", "total"):
        p = d["per_page_latency_ms"]
        lines.append(f"| {k} | {p[f'{k}_median']:.1f} | {p[f'{k}_p95']:.1f} |")
    lines += [
        "",
        "## Retrieval: every page centroid in one batched search, top 200",
        "",
        "| index | build s | search s | search ms per category | recall@200 vs exact |",
        "|---|---|---|---|---|",
    ]
    for kind, v in d["retrieval"].items():
        lines.append(
            f"| {kind} | {v['build_s']:.2f} | {v['search_s']:.2f} | {v['search_ms_per_category']:.2f} "
            f"| {v['recall_at_200']:.4f} |"
        )
    lines.append(f"\nIndex used: `{d['index_used']}` (fastest build + search with recall@200 >= 0.95).")
    if "encoders" in r:
        e = r["encoders"]
        lines += [
            "",
            "## Encoders on this CPU (measured, extrapolated)",
            "",
            f"- MiniLM bi-encoder: {e['bi_encoder_titles_per_s']:.0f} titles/s, so the whole catalog would take "
            f"{e['bi_encoder_full_catalog_min']:.0f} min (only new and changed titles are encoded on a nightly run).",
            f"- MiniLM cross-encoder: {e['cross_encoder_pairs_per_s']:.0f} pairs/s, so every candidate would take "
            f"{e['cross_encoder_all_candidates_min']:.0f} min (see cross_encoder_cost.md for cutting it).",
            f"- open_clip (`rn-mini-minilm`, 64x64): {e['open_clip_images_per_s']:.0f} images/s, whole catalog "
            f"{e['open_clip_full_catalog_min']:.0f} min.",
        ]
    if "dagster_full" in r:
        lines += [
            "",
            "## Through Dagster (one single-run backfill of every page, the project's SQLite instance, in-process "
            "executor)",
            "",
            f"- Nightly run: {r['dagster_full']['nightly_run_s']:.1f} s from launch to finish, planned events "
            f"included. The same work outside Dagster (the stages above plus the hashing title encoding) takes "
            f"{r['dagster_full']['nightly_run_s'] - r['dagster_overhead_s']:.1f} s, so Dagster's overhead is "
            f"{r['dagster_overhead_s']:.1f} s, **{100 * r['dagster_overhead_share']:.0f}% of the run** (event "
            "bookkeeping, Parquet IO between steps, the catalog-wide state each step rebuilds, and two steps the "
            "domain run does not have: relevance report and DuckDB publication).",
            *dagster_section(r["dagster_full"], r["incremental"]),
        ]
    return "\n".join(lines) + "\n"


def dagster_section(full: dict, incremental: dict) -> list[str]:
    """Full vs incremental nightly run: totals, what was redone, seconds per step."""
    lines = [
        f"- Peak RSS {full['peak_rss_gb']:.2f} GB; page sync before the run {full['sync_pages_s']:.1f} s.",
        f"- Incremental run after {incremental['changed_offers']:,} offers changed (1%; half retitled, half "
        f"repriced, every offer seen again): {incremental['nightly_run_s']:.1f} s, "
        f"**{100 * incremental['share_of_full_run']:.0f}% of the full run**.",
        "",
        "| redone | full run | incremental |",
        "|---|---|---|",
    ]
    for key, value in full.get("redone", {}).items():
        lines.append(f"| {key} | {value:,.2f} | {incremental.get('redone', {}).get(key, float('nan')):,.2f} |")
    lines += ["", "| step | full run s | incremental s |", "|---|---|---|"]
    for step, sec in full["steps_s"].items():
        lines.append(f"| {step} | {sec:.2f} | {incremental['steps_s'].get(step, float('nan')):.2f} |")
    return lines


def markdown_with_encoders(r: dict) -> str:
    m, f = r["machine"], r["dagster_full"]
    lines = [
        f"# Nightly run with the real encoders: {f['partitions']:,} pages, scale {r['scale']}",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores, GPU: {m['gpu']}); date {m['date']}; commit {m['git_commit']}.",
        f"Command: `{m['command']}`.",
        "",
        "The same seeded catalog as scale.md, at this scale, through Dagster with the MiniLM bi-encoder (titles, "
        "page and node prompts) and the int8 MiniLM cross-encoder on every candidate pair, fine-tuned once before "
        "the runs (training is not part of a nightly run). A full run encodes every title and scores every pair; "
        "the incremental run reuses the embedding store, unchanged predictions and the cross-encoder score cache.",
        "",
        f"- Full nightly run: **{f['nightly_run_s']:.1f} s** from launch to finish.",
        *dagster_section(f, r["incremental"]),
    ]
    return "\n".join(lines) + "\n"
