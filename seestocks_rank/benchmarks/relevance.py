"""Relevance on Home Depot's human judgments (fixed TRAIN/TEST split of ../shared/data/README.md).

Trains the cross-encoder and the fusion models on TRAIN within a time budget, then evaluates every
ranker on TEST with the harness, and writes bench/results/relevance.json and .md.

    .venv/bin/python -m seestocks_rank.benchmarks.relevance [--minutes 30] [--shared ../shared/data]
        [--work /tmp/relevance]
        [--cross-encoder-folds 1] [--reuse-models | --reuse-cross-encoder]

``--cross-encoder-folds K`` (K >= 2) trains K out-of-fold cross-encoders within the same budget, so
the fusion trains on all TRAIN queries, and evaluates their ensemble. ``--reuse-cross-encoder`` keeps
the cross-encoder(s) saved in --work/models (and the training record) and retrains only the fusion
models, on the same TRAIN queries.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from seestocks_rank.benchmarks.datasets import HOMEDEPOT_IRRELEVANT_MAX, HOMEDEPOT_RELEVANT_MIN, homedepot_judgments
from seestocks_rank.benchmarks.results import SHARED_DATA, machine_info, write_result
from seestocks_rank.evaluation.harness import RelevanceModels, evaluate
from seestocks_rank.evaluation.training import refit_cross_encoder_on_all, train_fusion_models, train_relevance_models
from seestocks_rank.models.encoders import SentenceTransformerEncoder


def selection_lines(training: dict) -> list[str]:
    """The fusion candidates' scores on the held-out TRAIN queries, per fusion model."""
    lines: list[str] = []
    for name in ("fusion_with_cross_encoder", "fusion_without_cross_encoder"):
        s = training.get(name, {})
        if "held_out" not in s:
            continue
        lines += [
            "",
            f"`{name}`: chose **{s['chosen']}** by {s['selection_score']} on held-out TRAIN queries "
            f"({s['folds']}-fold cross-validation over the {s['held_out_queries']} fusion queries, "
            f"{s['held_out_deep_queries']} deep, {s['held_out_deep_queries_with_bad_and_relevant']} of them "
            f"with bad and relevant products; relevant >= {s['relevant_min']}, bad <= {s['irrelevant_max']})"
            + (f"; rule: {s['rule']} (best held-out: {s['best_held_out']})." if "rule" in s else "."),
            "",
            "| candidate | ndcg@10 (all) | ndcg@10 (deep) | bad_pages@10 (deep) | selection score | SE vs best |",
            "|---|---|---|---|---|---|",
        ]
        for candidate, m in s["held_out"].items():
            se = m.get("standard_error_vs_best")
            lines.append(
                f"| {candidate} | {m['ndcg@10']:.4f} | {m['ndcg@10.deep']:.4f} | {m['bad_pages@10.deep']:.4f} "
                f"| {m['score']:.4f} | {'' if se is None else f'{se:.4f}'} |"
            )
    return ["", "## Fusion selection (TRAIN only)", *lines] if lines else []


def paired_lines(evaluation: dict) -> list[str]:
    """Learned ranker minus baseline on the same TEST queries, with standard errors over queries."""
    if not evaluation.get("paired"):
        return []
    lines = [
        "",
        "## Paired differences on TEST (learned ranker minus baseline, +- one standard error over queries)",
        "",
        "| pair | ndcg@10 (all) | ndcg@10 (deep) | bad_pages@10 (deep) | deep pages clean only in the first / second |",
        "|---|---|---|---|---|",
    ]
    for pair, d in evaluation["paired"].items():
        cells = [
            f"{d[m]['difference']:+.4f} +- {d[m]['standard_error']:.4f}"
            for m in ("ndcg@10", "ndcg@10.deep", "bad_pages@10.deep")
        ]
        lines.append(
            f"| {pair} | {' | '.join(cells)} | {d['deep_pages_only_a_clean']} / {d['deep_pages_only_b_clean']} |"
        )
    return lines


def refit_line(training: dict) -> str:
    """How the served cross-encoder was refit on all TRAIN queries, when it was."""
    first = training.get("cross_encoder_selection")
    if not first:
        return ""
    return (
        " This is the refit on all TRAIN queries, served and measured here. The fusion was trained and chosen "
        f"on the held-out scores of a first cross-encoder ({first['version']}: {first['train_pairs']} pairs "
        f"from the TRAIN queries outside the fusion's, {first['epochs']:.2f} epochs, {first['seconds'] / 60:.1f} min)."
    )


def markdown(result: dict) -> str:
    reused = result["training"].get("cross_encoder_reused", False)
    folds = result["training"].get("cross_encoder_folds", 1)
    kind = f" (k-fold out-of-fold, ensemble of {folds}; pairs and time summed, epochs and pairs/s per model)"
    lines = [
        "# Relevance on Home Depot TEST queries",
        "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores, GPU: {result['machine']['gpu']}); "
        f"date {result['machine']['date']}; commit {result['machine']['git_commit']}.",
        f"Command: `{result['machine']['command']}`",
        "",
        "Cross-encoder"
        + (kind if folds >= 2 else "")
        + f": {result['training']['cross_encoder']['pairs_seen']} pairs seen "
        f"({result['training']['cross_encoder']['epochs']:.2f} epochs) in "
        f"{result['training']['cross_encoder']['seconds'] / 60:.1f} min, "
        f"{result['training']['cross_encoder']['pairs_per_second']:.1f} pairs/s training "
        f"({result['training']['cross_encoder'].get('precision', 'float32')}); "
        f"inference {result['inference_pairs_per_second']:.0f} pairs/s."
        + (
            " (Cross-encoder reused from an earlier run; fusion models retrained.)"
            if reused and "cross_encoder_selection" not in result["training"]
            else ""
        )
        + refit_line(result["training"]),
        "",
        "| ranker | ndcg@10 (all) | ndcg@10 (deep) | relevant@10 (deep) | bad_pages@10 (deep) |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["evaluation"]["rankers"].items():
        lines.append(
            f"| {name} | {m['all']['ndcg@10']:.4f} | {m['deep']['ndcg@10']:.4f} | {m['deep']['relevant@10']:.4f} "
            f"| {m['deep']['bad_pages@10']:.4f} |"
        )
    e = result["evaluation"]
    deep = next(iter(e["rankers"].values()))["deep"]
    lines += [
        "",
        f"{e['queries']} TEST queries, {e['judgments']} judgments; deep = more than 10 judged products "
        f"({deep['queries']} queries). Relevant: grade >= {e['relevant_min']}; bad: grade <= {e['irrelevant_max']}.",
        *paired_lines(e),
        *selection_lines(result["training"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="cross-encoder training budget")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument(
        "--cross-encoder-folds", type=int, default=1, help="K >= 2: K out-of-fold cross-encoders, ensembled"
    )
    parser.add_argument("--shared", default=str(SHARED_DATA))
    parser.add_argument("--work", default="/tmp/seestocks-relevance")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--reuse-models", action="store_true", help="skip training when models exist in --work")
    reuse.add_argument(
        "--reuse-cross-encoder",
        action="store_true",
        help="keep the cross-encoder in --work/models and retrain only the fusion models",
    )
    parser.add_argument(
        "--refit-cross-encoder",
        action="store_true",
        help="then fine-tune the served cross-encoder again on all TRAIN queries (a second --minutes budget)",
    )
    parser.add_argument("--results-name", default="relevance", help="bench/results/<name>.json and .md")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    judgments = homedepot_judgments(Path(args.shared) / "homedepot" / "train.csv.zip")
    train = judgments.filter(judgments["split"] == "train").drop("split")
    test = judgments.filter(judgments["split"] == "test").drop("split")
    encoder = SentenceTransformerEncoder()
    models_dir = work / "models"
    thresholds = {"relevant_min": HOMEDEPOT_RELEVANT_MIN, "irrelevant_max": HOMEDEPOT_IRRELEVANT_MAX}
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.reuse_cross_encoder:
        train_fusion_models(train, encoder, models_dir, **thresholds, log=log)
    elif not (args.reuse_models and (models_dir / "training.json").exists()):
        train_relevance_models(
            train,
            encoder,
            models_dir,
            cross_encoder_budget_s=args.minutes * 60,
            max_epochs=args.epochs,
            cross_encoder_folds=args.cross_encoder_folds,
            **thresholds,
            log=log,
        )
    if args.refit_cross_encoder:
        refit_cross_encoder_on_all(train, models_dir, budget_s=args.minutes * 60, max_epochs=args.epochs, log=log)
    training = json.loads((models_dir / "training.json").read_text())
    models = RelevanceModels.load(models_dir)
    start = time.perf_counter()
    n = min(3000, test.height)
    models.cross_encoder.score(test["query"][:n].to_list(), test["title"][:n].to_list())
    inference = n / (time.perf_counter() - start)
    evaluation = evaluate(
        test, encoder, models, relevant_min=HOMEDEPOT_RELEVANT_MIN, irrelevant_max=HOMEDEPOT_IRRELEVANT_MAX
    )
    result = {
        "machine": machine_info(),
        "training": training,
        "inference_pairs_per_second": inference,
        "evaluation": evaluation,
    }
    write_result(args.results_name, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
