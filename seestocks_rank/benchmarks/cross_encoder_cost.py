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
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from seestocks_rank.benchmarks.cross_encoder_cost_report import describe_cpu, markdown
from seestocks_rank.benchmarks.datasets import HOMEDEPOT_IRRELEVANT_MAX, HOMEDEPOT_RELEVANT_MIN, homedepot_judgments
from seestocks_rank.benchmarks.results import RESULTS_DIR, SHARED_DATA, machine_info, write_result
from seestocks_rank.evaluation.harness import relevance_features
from seestocks_rank.evaluation.metrics import ranked, ranking_metrics
from seestocks_rank.models.cross_encoder import CrossEncoder
from seestocks_rank.models.encoders import SentenceTransformerEncoder

DEFAULT_MODEL = Path("/tmp/rel2/models/cross_encoder")
DEFAULT_JUDGMENTS = SHARED_DATA / "homedepot" / "train.csv.zip"
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
        ranked(judgments, scores),
        k=10,
        relevant_min=HOMEDEPOT_RELEVANT_MIN,
        irrelevant_max=HOMEDEPOT_IRRELEVANT_MAX,
        grade_floor=floor,
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
    parser.add_argument("--out", default=str(RESULTS_DIR))
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
    write_result("cross_encoder_cost", result, markdown(result), args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
