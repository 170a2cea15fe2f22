"""Cross-encoder cost on CPU (issue "scale"): float32 vs int8 dynamic quantization, length-sorted vs
unsorted batches, and a cheap first pass (only each query's top N by the bi-encoder cosine or BM25 go
to the cross-encoder), with the NDCG@10 each costs on Home Depot TEST queries.

The trained cross-encoder is only read (never retrained); TEST judgments are only scored. Throughput
is timed on a subset of whole TEST queries, every variant once per round with the order rotated
between rounds, so that a shared CPU slows them alike; the ratio to float32 is taken within each
round (median over rounds). NDCG@10 is measured on all TEST pairs. Writes
bench/results/cross_encoder_cost.json and .md.

    nice -n 19 .venv/bin/python -m seestocks_rank.benchmarks.cross_encoder_cost [--model /tmp/rel2/models/cross_encoder]
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.datasets import homedepot_judgments
from seestocks_rank.benchmarks.machine import machine_info
from seestocks_rank.evaluation.harness import relevance_features
from seestocks_rank.evaluation.metrics import ranked, ranking_metrics
from seestocks_rank.models.cross_encoder import CrossEncoder
from seestocks_rank.models.encoders import SentenceTransformerEncoder

ROOT = Path(__file__).resolve().parents[2]  # the project folder (results go to its bench/results)

RELEVANT_MIN, IRRELEVANT_MAX = 2.5, 1.49  # as benchmarks/relevance.py: >= 2.5 relevant, < 1.5 irrelevant
DEFAULT_MODEL = Path("/tmp/rel2/models/cross_encoder")
DEFAULT_JUDGMENTS = ROOT.parent / "shared" / "data" / "homedepot" / "train.csv.zip"
BASE = "fp32"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def batched_by(model: CrossEncoder, order: str) -> CrossEncoder:
    """A shallow copy of ``model`` (same weights) whose ``score`` batches pairs in another order:
    ``"chars"`` (by character count, what ``score`` did before) or ``"input"`` (unsorted)."""
    other = copy.copy(model)
    if order == "chars":
        other._inference_order = lambda encoded, contexts, titles: model._length_order(contexts, titles)
    elif order == "input":
        other._inference_order = lambda encoded, contexts, titles: np.arange(len(titles))
    else:
        raise ValueError(order)
    return other


def query_subset(test: pl.DataFrame, pairs: int, seed: int) -> np.ndarray:
    """Mask of whole TEST queries, taken in seeded random order until ``pairs`` judged pairs are reached."""
    sizes = test.group_by("query_id").len().sort("query_id")
    sizes = sizes[np.random.default_rng(seed).permutation(sizes.height)]
    keep = sizes.filter(pl.col("len").cum_sum().shift(1, fill_value=0) < pairs).get_column("query_id")
    return test.get_column("query_id").is_in(keep.implode()).to_numpy()


def padding_efficiency(model: CrossEncoder, contexts: list[str], titles: list[str], batch_size: int) -> dict:
    """Real tokens / padded positions when batching in input order, by character count (``score``
    before) and by token count (``score`` now)."""
    enc = model.tokenizer(contexts, titles, truncation="longest_first", max_length=model.max_length)
    tokens = np.array([len(ids) for ids in enc["input_ids"]])

    def efficiency(order: np.ndarray) -> float:
        batches = [tokens[order[i : i + batch_size]] for i in range(0, len(order), batch_size)]
        return round(float(tokens.sum() / sum(len(b) * b.max() for b in batches)), 4)

    return {
        "input_order": efficiency(np.arange(len(tokens))),
        "char_length_sorted": efficiency(model._length_order(contexts, titles)),
        "token_length_sorted": efficiency(model._inference_order(enc, contexts, titles)),
        "mean_tokens": round(float(tokens.mean()), 2),
    }


def time_interleaved(
    models: dict[str, CrossEncoder], subset: pl.DataFrame, rounds: int, batch_size: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """Per variant: wall and CPU seconds per round, median pairs/s and ratios to fp32; and each
    variant's scores of the subset (from its last round)."""
    contexts, titles = subset.get_column("query").to_list(), subset.get_column("title").to_list()
    for model in models.values():  # warm-up: first-call allocations and kernel selection
        model.score(contexts[:64], titles[:64], batch_size=batch_size)
    names = list(models)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, np.ndarray] = {}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            scores[name] = models[name].score(contexts, titles, batch_size=batch_size)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            log(f"round {r + 1}/{rounds} {name}: {len(titles) / seconds[name][-1]:.1f} pairs/s")
    out = {}
    for name in names:
        s, c = np.asarray(seconds[name]), np.asarray(cpu[name])
        ratios = np.asarray(seconds[BASE]) / s
        out[name] = {
            "seconds": [round(float(x), 3) for x in s],
            "cpu_seconds": [round(float(x), 3) for x in c],
            "pairs_per_second": round(float(len(titles) / np.median(s)), 1),
            "ratio_vs_fp32": round(float(np.median(ratios)), 3),
            "ratio_vs_fp32_per_round": [round(float(x), 3) for x in ratios],
            "cpu_ratio_vs_fp32": round(float(np.median(np.asarray(cpu[BASE]) / c)), 3),
        }
    return out, scores


def metrics(judgments: pl.DataFrame, scores: np.ndarray, floor: float) -> dict[str, dict[str, float]]:
    return ranking_metrics(
        ranked(judgments, scores), k=10, relevant_min=RELEVANT_MIN, irrelevant_max=IRRELEVANT_MAX, grade_floor=floor
    )


def agreement(judgments: pl.DataFrame, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How close ``b``'s scores are to ``a``'s: Spearman over all pairs, mean |difference| in units
    of ``a``'s standard deviation, and the share of queries whose whole ranking is unchanged."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    same = (
        ranked(judgments, a)
        .select("query_id", "product_id", "rank")
        .join(ranked(judgments, b).select("query_id", "product_id", "rank"), on=["query_id", "product_id"])
        .group_by("query_id")
        .agg((pl.col("rank") == pl.col("rank_right")).all().alias("same"))
    )
    return {
        "spearman": round(float(np.corrcoef(ra, rb)[0, 1]), 4),
        "mean_abs_diff_in_sd": round(float(np.abs(a - b).mean() / a.std()), 4),
        "queries_same_ranking": round(float(same.get_column("same").mean()), 4),
    }


def batch_dependence(in_full_run: np.ndarray, alone: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How much a pair's score depends on the other pairs scored with it: the throughput subset's
    scores when scored alone vs within the call on all TEST pairs, in units of fp32's sd."""
    diff = np.abs(in_full_run - alone) / reference.std()
    return {"mean_abs_diff_in_sd": round(float(diff.mean()), 4), "max_abs_diff_in_sd": round(float(diff.max()), 4)}


def first_pass_scores(judgments: pl.DataFrame, cheap: np.ndarray, ce: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Each query's top ``n`` by ``cheap`` ordered by the cross-encoder, above the rest in ``cheap``
    order. Returns the final scores and how many pairs the cross-encoder had to score."""
    cheap_rank = (
        ranked(judgments, cheap)
        .select("query_id", "product_id", "rank")
        .join(judgments.select("query_id", "product_id").with_row_index("_row"), on=["query_id", "product_id"])
        .sort("_row")
        .get_column("rank")
        .to_numpy()
    )
    top = cheap_rank <= n
    final = np.where(top, 1e6 + ce.astype(np.float64), -cheap_rank.astype(np.float64))  # float64: no ties
    return final, int(top.sum())


def row(name: str, m: dict, base: dict, *, timing: dict, ce_pairs: int, total: int) -> dict:
    """One table row; a first pass that sends ``ce_pairs`` of ``total`` pairs to the cross-encoder
    scales the cross-encoder's measured speed by ``total / ce_pairs``."""
    scale = total / ce_pairs
    return {
        "variant": name,
        "pairs_per_second": round(timing["pairs_per_second"] * scale, 1),
        "ratio_vs_fp32": round(timing["ratio_vs_fp32"] * scale, 3),
        "ratio_range": [
            round(min(timing["ratio_vs_fp32_per_round"]) * scale, 2),
            round(max(timing["ratio_vs_fp32_per_round"]) * scale, 2),
        ],
        "cpu_ratio_vs_fp32": round(timing["cpu_ratio_vs_fp32"] * scale, 3),
        "cross_encoder_pairs": ce_pairs,
        "cross_encoder_share": round(ce_pairs / total, 4),
        "ndcg@10": m["all"]["ndcg@10"],
        "ndcg@10.deep": m["deep"]["ndcg@10"],
        "bad_pages@10.deep": m["deep"]["bad_pages@10"],
        "delta_ndcg@10": round(m["all"]["ndcg@10"] - base["all"]["ndcg@10"], 4),
        "delta_ndcg@10.deep": round(m["deep"]["ndcg@10"] - base["deep"]["ndcg@10"], 4),
    }


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
        f"{result['test']['deep_queries']} deep = more than 10 judged). Relevant: grade >= {RELEVANT_MIN}; "
        f"bad: grade <= {IRRELEVANT_MAX}.",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="trained cross-encoder folder")
    parser.add_argument("--judgments", default=str(DEFAULT_JUDGMENTS), help="Home Depot train.csv.zip")
    parser.add_argument("--throughput-pairs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--first-pass", default="5,8,10,12,20,30,50", help="comma-separated N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-queries", type=int, default=0, help="smoke runs only: score this many TEST queries")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    niceness, load_start = os.nice(0), os.getloadavg()
    model_dir = Path(args.model)
    if not (model_dir / "cross_encoder.json").exists():
        parser.error(f"no trained cross-encoder in {model_dir}: pass --model DIR (this benchmark never trains one)")
    judgments = homedepot_judgments(Path(args.judgments))
    test = judgments.filter(pl.col("split") == "test").drop("split")  # TEST is only scored, never trained on
    if args.max_queries:
        keep = test.get_column("query_id").unique().sort().head(args.max_queries)
        test = test.filter(pl.col("query_id").is_in(keep.implode()))
    floor = float(test.get_column("grade").min())
    contexts, titles = test.get_column("query").to_list(), test.get_column("title").to_list()
    sizes = test.group_by("query_id").len().get_column("len")

    start = time.perf_counter()
    fp32 = CrossEncoder.load(model_dir, device="cpu")
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    int8 = CrossEncoder.load(model_dir, device="cpu", quantize=True)
    load_int8_seconds = time.perf_counter() - start
    int8_tensor = fp32.quantized(per_channel=False)
    models = {
        BASE: fp32,
        "int8": int8,
        "int8-tensor": int8_tensor,
        "fp32-chars": batched_by(fp32, "chars"),
        "fp32-unsorted": batched_by(fp32, "input"),
    }
    log(f"{test.height} TEST pairs; models loaded; torch threads {torch.get_num_threads()}, nice {niceness}")

    padding = padding_efficiency(fp32, contexts, titles, args.batch_size)
    in_subset = query_subset(test, args.throughput_pairs, args.seed)
    subset = test.filter(pl.Series(in_subset))
    throughput, subset_scores = time_interleaved(models, subset, args.rounds, args.batch_size)

    scores: dict[str, np.ndarray] = {}
    full: dict[str, dict[str, float]] = {}
    for name in (BASE, "int8", "int8-tensor"):
        start = time.perf_counter()
        scores[name] = models[name].score(contexts, titles, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        full[name] = {"seconds": round(seconds, 1), "pairs_per_second": round(test.height / seconds, 1)}
        log(f"all TEST with {name}: {full[name]['pairs_per_second']:.1f} pairs/s")

    start = time.perf_counter()
    feats = relevance_features(test, SentenceTransformerEncoder(device="cpu"), None)
    first_pass_seconds = time.perf_counter() - start
    cheap = {"bi_encoder": feats.get_column("bi_encoder").to_numpy(), "bm25": feats.get_column("bm25").to_numpy()}

    base_m = metrics(test, scores[BASE], floor)
    table = []
    for name in (BASE, "fp32-chars", "fp32-unsorted", "int8", "int8-tensor"):
        m = metrics(test, scores[name.split("-")[0] if name.endswith(("-chars", "-unsorted")) else name], floor)
        t = throughput[name]
        table.append(
            row(
                name,
                m,
                base_m,
                timing=t,
                ce_pairs=test.height,
                total=test.height,
            )
        )
    for cheap_name, cheap_scores in cheap.items():
        for ce_name in (BASE, "int8"):
            if cheap_name == "bm25" and ce_name == BASE:
                continue
            for n in (int(x) for x in args.first_pass.split(",")):
                final, ce_pairs = first_pass_scores(test, cheap_scores, scores[ce_name], n)
                t = throughput[ce_name]
                table.append(
                    row(
                        f"{ce_name} top{n}-{cheap_name}",
                        metrics(test, final, floor),
                        base_m,
                        timing=t,
                        ce_pairs=ce_pairs,
                        total=test.height,
                    )
                )
    load_end = os.getloadavg()
    cores = os.cpu_count() or 1
    shared = niceness > 0 or max(load_start[0], load_end[0]) > 0.5 * cores
    cpu_note = describe_cpu(niceness, load_start, load_end, cores)
    machine = machine_info()
    result = {
        "machine": machine,
        "command": f"nice -n {niceness} {machine['command']}" if niceness else machine["command"],
        "cpu_note": cpu_note,
        "cpu_shared": shared,
        "niceness": niceness,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": str(model_dir),
        "model_version": fp32.version,
        "max_length": fp32.max_length,
        "batch_size": args.batch_size,
        "load_seconds": {"fp32": round(load_seconds, 2), "int8": round(load_int8_seconds, 2)},
        "test": {
            "judgments": test.height,
            "queries": sizes.len(),
            "deep_queries": int((sizes > 10).sum()),
            "max_judged_per_query": int(sizes.max()),
        },
        "throughput": {
            "pairs": subset.height,
            "queries": subset.get_column("query_id").n_unique(),
            "rounds": args.rounds,
            "variants": throughput,
        },
        "full_test_scoring": full,
        "first_pass_seconds": round(first_pass_seconds, 1),
        "padding_efficiency": padding,
        "batch_dependence": {
            name: batch_dependence(scores[name][in_subset], subset_scores[name], scores[BASE]) for name in scores
        },
        "agreement_with_fp32": {name: agreement(test, scores[BASE], scores[name]) for name in scores if name != BASE},
        "cheap_rankers": {name: metrics(test, s, floor) for name, s in cheap.items()},
        "cross_encoder_rankers": {name: metrics(test, s, floor) for name, s in scores.items()},
        "table": table,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_encoder_cost.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "cross_encoder_cost.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
