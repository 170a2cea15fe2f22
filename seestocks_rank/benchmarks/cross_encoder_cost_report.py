"""The cross-encoder cost benchmark's write-up: bench/results/cross_encoder_cost.md from its JSON."""

from seestocks_rank.benchmarks.datasets import HOMEDEPOT_IRRELEVANT_MAX, HOMEDEPOT_RELEVANT_MIN


def describe_cpu(niceness: int, load_start: tuple, load_end: tuple, cores: int) -> str:
    shared = niceness > 0 or max(load_start[0], load_end[0]) > 0.5 * cores
    if not shared:
        return f"not shared (nice {niceness}, load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end)."
    return (
        f"shared: run under nice {niceness}, load average {load_start[0]:.1f} at start and {load_end[0]:.1f} at end "
        f"on {cores} cores, so absolute pairs/s are distorted and vary between runs; compare the ratios, measured "
        "interleaved under the same conditions. (bench/results/relevance.md measured 149 pairs/s with the earlier "
        "character-sorted batching, the `fp32-chars` row here.)"
    )


def markdown(result: dict) -> str:
    mach, t = result["machine"], result["throughput"]
    lines = [
        "# Cross-encoder cost on CPU: int8 quantization and a cheap first pass (Home Depot TEST)",
        "",
        f"Machine: {mach['cpu']} ({mach['cores']} cores, GPU: {mach['gpu']}), torch {result['torch']} with "
        f"{result['torch_threads']} threads; date {mach['date']}; commit {mach['git_commit']}.",
        f"Command: `{result['command']}`",
        f"Model: `{result['model']}` (version {result['model_version']}, max_length {result['max_length']}), "
        f"batch size {result['batch_size']}.",
        "",
        f"**CPU:** {result['cpu_note']}",
        "",
        f"Throughput: {t['pairs']} pairs of {t['queries']} whole TEST queries, {t['rounds']} rounds, every variant "
        "once per round in rotated order; pairs/s is the median over rounds and the ratio to fp32 the median of the "
        "per-round wall-clock ratios (their range in brackets); the CPU-time ratio is the same on process CPU "
        "seconds, less sensitive to the share of the CPU the process got. NDCG@10 on all "
        f"{result['test']['judgments']} TEST pairs ({result['test']['queries']} queries, "
        f"{result['test']['deep_queries']} deep = more than 10 judged). Relevant: grade >= {HOMEDEPOT_RELEVANT_MIN}; "
        f"bad: grade <= {HOMEDEPOT_IRRELEVANT_MAX}.",
        "",
        "| variant | pairs/s | ratio vs fp32 (rounds' range) | CPU-time ratio | CE pairs | ndcg@10 (all) "
        "| ndcg@10 (deep) | delta all | delta deep | bad_pages@10 (deep) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["table"]:
        lines.append(
            f"| {r['variant']} | {r['pairs_per_second']:.0f} | {r['ratio_vs_fp32']:.2f}x "
            f"({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}) | {r['cpu_ratio_vs_fp32']:.2f}x "
            f"| {r['cross_encoder_share']:.0%} | {r['ndcg@10']:.4f} | {r['ndcg@10.deep']:.4f} "
            f"| {r['delta_ndcg@10']:+.4f} | {r['delta_ndcg@10.deep']:+.4f} | {r['bad_pages@10.deep']:.4f} |"
        )
    lines += ["", "Cheap rankers alone (no cross-encoder), for reference:", ""]
    for name, m in result["cheap_rankers"].items():
        lines.append(f"- {name}: ndcg@10 {m['all']['ndcg@10']:.4f} (all), {m['deep']['ndcg@10']:.4f} (deep)")
    lines += ["", "Score agreement with fp32 on all TEST pairs:", ""]
    for name, a in result["agreement_with_fp32"].items():
        lines.append(
            f"- {name}: Spearman {a['spearman']:.4f}, mean |diff| {a['mean_abs_diff_in_sd']:.3f} sd, "
            f"{a['queries_same_ranking']:.1%} of queries ranked identically"
        )
    lines += [
        "",
        "Batch dependence (a pair's score when the throughput subset is scored alone vs within the call on all "
        "TEST pairs, so with other batch mates; units of fp32's sd): "
        + ", ".join(
            f"{k} mean {v['mean_abs_diff_in_sd']:.3f} / max {v['max_abs_diff_in_sd']:.3f}"
            for k, v in result["batch_dependence"].items()
        )
        + ". Dynamic quantization scales each Linear layer's input by the absolute maximum over the whole batch, "
        "so an int8 score depends on the pairs batched with it: scores are reproducible for the same input, "
        "not across different batchings.",
    ]
    p = result["padding_efficiency"]
    full = result["full_test_scoring"]
    lines += [
        "",
        f"Padding efficiency (real tokens / padded positions, batches of {result['batch_size']}, all TEST pairs, "
        f"{p['mean_tokens']:.1f} tokens a pair): input order {p['input_order']:.2f}, sorted by characters (`score` "
        f"before) {p['char_length_sorted']:.2f}, sorted by tokens (`score` now) {p['token_length_sorted']:.2f}.",
        "",
        "Full-TEST scoring (one sequential pass each, not interleaved, so the load may differ between them; "
        "the ratios above are the comparison): "
        + ", ".join(f"{k} {v['pairs_per_second']:.0f} pairs/s ({v['seconds']:.0f} s)" for k, v in full.items())
        + f". Loading takes {result['load_seconds']['fp32']:.1f} s (fp32), {result['load_seconds']['int8']:.1f} s "
        "(int8, quantizing included).",
        "",
        "Notes:",
        "",
        "- `int8` is `CrossEncoder.load(folder, device='cpu', quantize=True)` (per-channel weight scales); "
        "`int8-tensor` is `quantized(per_channel=False)`. Batching: by token count (`score` now, no suffix), "
        "by character count (`-chars`, `score` before this change) or in input order (`-unsorted`); the order "
        "changes speed, not scores, so those rows share the NDCG of their precision.",
        "- `topN-<cheap>`: each query's top N by the cheap score are reordered by the cross-encoder, the rest keep "
        "the cheap order below them. Its pairs/s is the cross-encoder variant's measured pairs/s times "
        "(all pairs / CE pairs), counting the cheap pass as free: in the pipeline the bi-encoder vectors and BM25 "
        f"are computed anyway (here the bi-encoder took {result['first_pass_seconds']:.0f} s for all TEST texts).",
        f"- Home Depot TEST queries have at most {result['test']['max_judged_per_query']} judged products, so a first "
        "pass with N >= that scores every pair and changes nothing here; the NDCG cost of N < candidates per page "
        "on real category pages (hundreds of candidates, most unjudged) cannot be measured on these judgments.",
    ]
    return "\n".join(lines) + "\n"
