"""Relevance on Home Depot's human judgments (fixed TRAIN/TEST split of ../shared/data/README.md).

Trains the cross-encoder and the fusion models on TRAIN within a time budget, then evaluates every
ranker on TEST with the harness, and writes bench/results/relevance.json and .md.

    .venv/bin/python bench/relevance.py [--minutes 30] [--shared ../shared/data] [--work /tmp/relevance]
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import machine_info  # noqa: E402
from seestocks_rank.adapters import homedepot_judgments  # noqa: E402
from seestocks_rank.encoders import SentenceTransformerEncoder  # noqa: E402
from seestocks_rank.relevance import RelevanceModels, evaluate, train_relevance_models  # noqa: E402

RELEVANT_MIN, IRRELEVANT_MAX = 2.5, 1.49  # README: >= 2.5 relevant, < 1.5 irrelevant


def markdown(result: dict) -> str:
    lines = [
        "# Relevance on Home Depot TEST queries",
        "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores, GPU: {result['machine']['gpu']}); "
        f"date {result['machine']['date']}; commit {result['machine']['git_commit']}.",
        f"Command: `{result['machine']['command']}`",
        "",
        f"Cross-encoder: {result['training']['cross_encoder']['pairs_seen']} pairs seen "
        f"({result['training']['cross_encoder']['epochs']:.2f} epochs) in "
        f"{result['training']['cross_encoder']['seconds'] / 60:.1f} min, "
        f"{result['training']['cross_encoder']['pairs_per_second']:.1f} pairs/s training; "
        f"inference {result['inference_pairs_per_second']:.0f} pairs/s.",
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
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="cross-encoder training budget")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default="/tmp/seestocks-relevance")
    parser.add_argument("--reuse-models", action="store_true", help="skip training when models exist in --work")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    judgments = homedepot_judgments(Path(args.shared) / "homedepot" / "train.csv.zip")
    train = judgments.filter(judgments["split"] == "train").drop("split")
    test = judgments.filter(judgments["split"] == "test").drop("split")
    encoder = SentenceTransformerEncoder()
    models_dir = work / "models"
    if not (args.reuse_models and (models_dir / "training.json").exists()):
        train_relevance_models(
            train,
            encoder,
            models_dir,
            cross_encoder_budget_s=args.minutes * 60,
            max_epochs=args.epochs,
            log=lambda m: print(m, file=sys.stderr),
        )
    training = json.loads((models_dir / "training.json").read_text())
    models = RelevanceModels.load(models_dir)
    start = time.perf_counter()
    n = min(3000, test.height)
    models.cross_encoder.score(test["query"][:n].to_list(), test["title"][:n].to_list())
    inference = n / (time.perf_counter() - start)
    evaluation = evaluate(test, encoder, models, relevant_min=RELEVANT_MIN, irrelevant_max=IRRELEVANT_MAX)
    result = {
        "machine": machine_info(),
        "training": training,
        "inference_pairs_per_second": inference,
        "evaluation": evaluation,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "relevance.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "relevance.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
