"""Training the relevance models on judgments: the cross-encoder and the fusion rankers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from seestocks_rank.models.encoders import TextEncoder

if TYPE_CHECKING:
    from seestocks_rank.models.cross_encoder import CrossEncoder, CrossEncoderEnsemble
from seestocks_rank.evaluation.harness import (
    CROSS_ENCODER_DIR,
    CROSS_ENCODER_FOLDS_DIR,
    FOLDS_FILE,
    FUSION_WITH_CE,
    FUSION_WITHOUT_CE,
    _context,
    _read_query_folds,
    fusion_features,
    load_cross_encoder,
    relevance_features,
)
from seestocks_rank.evaluation.selection import load_ranker, train_fusion_ranker
from seestocks_rank.splits import query_folds


def train_relevance_models(
    judgments: pl.DataFrame,
    text_encoder: TextEncoder,
    out: str | Path,
    *,
    cross_encoder_budget_s: float = 1800.0,
    cross_encoder_share: float = 0.8,
    cross_encoder_folds: int = 1,
    max_epochs: float = 3.0,
    max_pairs: int | None = None,
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    refit_cross_encoder: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Fine-tune the cross-encoder, then train both fusion models with ``train_fusion_models`` on
    queries whose cross-encoder scores are out-of-sample (as they are at serving time).

    ``cross_encoder_folds=1``: the cross-encoder trains on a seeded ``cross_encoder_share`` of the
    queries (``out/cross_encoder``) and the fusion on the others. ``cross_encoder_folds=k >= 2``: the
    queries are dealt into k seeded folds (``query_folds``); cross-encoder i trains on every fold but
    i with ``cross_encoder_budget_s / k`` (``out/cross_encoder_folds/fold_i``, the folds in
    ``folds.json``), scores the queries of fold i for the fusion, which so trains on all queries; the
    cross-encoder served is the ensemble (mean score) of the k. ``max_epochs`` and ``max_pairs``
    apply to each model. Also writes ``out/fusion_with_cross_encoder``,
    ``out/fusion_without_cross_encoder`` and ``out/training.json``. ``relevant_min`` /
    ``irrelevant_max``: the grade thresholds of the fusion's selection score (default: the grade
    range's top and bottom quarter, see ``grade_thresholds``). ``precision``: the cross-encoder's
    training autocast dtype (``cross_encoder.training_precision``). ``refit_cross_encoder``: then
    ``refit_cross_encoder_on_all`` (a second budget; single cross-encoder only)."""
    if cross_encoder_folds < 1:
        raise ValueError(f"cross_encoder_folds must be >= 1, got {cross_encoder_folds}")
    if refit_cross_encoder and cross_encoder_folds != 1:
        raise ValueError("refit_cross_encoder applies to the single cross-encoder (cross_encoder_folds=1)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"max_epochs": max_epochs, "max_pairs": max_pairs, "device": device, "precision": precision, "log": log}
    train = _cross_encoder_trainer(judgments, **options)
    if cross_encoder_folds == 1:
        shutil.rmtree(out / CROSS_ENCODER_FOLDS_DIR, ignore_errors=True)  # else it would be served instead
        rows = judgments.filter(pl.Series(~_fusion_queries(judgments, cross_encoder_share, seed)))
        ce, training = train(rows, out / CROSS_ENCODER_DIR, budget_s=cross_encoder_budget_s, seed=seed)
    else:
        ce, training = _train_fold_cross_encoders(
            judgments, out, train, folds=cross_encoder_folds, budget_s=cross_encoder_budget_s, seed=seed, log=log
        )
    summary = train_fusion_models(
        judgments,
        text_encoder,
        out,
        cross_encoder=ce,
        cross_encoder_training=training,
        cross_encoder_share=cross_encoder_share,
        relevant_min=relevant_min,
        irrelevant_max=irrelevant_max,
        seed=seed,
        log=log,
    )
    if not refit_cross_encoder:
        return summary
    return refit_cross_encoder_on_all(judgments, out, budget_s=cross_encoder_budget_s, seed=seed, **options)


def _cross_encoder_trainer(
    judgments: pl.DataFrame, **options: object
) -> Callable[..., tuple[CrossEncoder, dict[str, object]]]:
    """``_train_cross_encoder`` with the grade range of ``judgments`` and ``options`` (max_epochs,
    max_pairs, device, precision, log) bound; the caller gives rows, folder, budget_s and seed."""
    grades = judgments.get_column("grade")
    return partial(_train_cross_encoder, grades=(float(grades.min()), float(grades.max())), **options)


def refit_cross_encoder_on_all(
    judgments: pl.DataFrame,
    out: str | Path,
    *,
    budget_s: float = 1800.0,
    max_epochs: float = 3.0,
    max_pairs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Replace the served cross-encoder of ``out`` with one fine-tuned on every query of ``judgments``
    (a second ``budget_s``), after the fusion models were trained and chosen on the queries the first
    one did not see: the usual refit of a cross-validated choice on all its data.

    The fusion models keep what they learned from the held-out scores; candidates that read the
    cross-encoder through within-query z-scores only (``cross_encoder_only``, the linear blends) are
    insensitive to the refit model's score scale, a LightGBM reading the raw score is not
    (``fusion_reads_raw_cross_encoder`` in the record). ``training.json`` keeps the first model's
    record as ``cross_encoder_selection``; ``train_fusion_models`` then refuses to reuse this
    cross-encoder, whose training data now includes the fusion's queries."""
    out = Path(out)
    summary = json.loads((out / "training.json").read_text())
    if summary.get("cross_encoder_folds", 1) != 1 or (out / CROSS_ENCODER_FOLDS_DIR).exists():
        raise ValueError(f"{out}: the refit applies to a single cross-encoder, not to out-of-fold ones")
    train = _cross_encoder_trainer(
        judgments, max_epochs=max_epochs, max_pairs=max_pairs, device=device, precision=precision, log=log
    )
    _, record = train(
        judgments,
        out / CROSS_ENCODER_DIR,
        budget_s=budget_s,
        seed=seed,
        name="cross-encoder refit on all queries",
        extra={"refit_on_all_queries": True},
    )
    fusion = load_ranker(out / FUSION_WITH_CE) if (out / FUSION_WITH_CE).exists() else None
    summary["cross_encoder_selection"] = summary.get("cross_encoder", {})
    summary["cross_encoder"] = {
        **record,
        "refit_on_all_queries": True,
        "fusion_reads_raw_cross_encoder": fusion is not None and "cross_encoder" in fusion.features,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _train_cross_encoder(
    rows: pl.DataFrame,
    folder: Path,
    *,
    grades: tuple[float, float],
    budget_s: float,
    max_epochs: float,
    max_pairs: int | None,
    seed: int,
    device: str,
    log: Callable[[str], None],
    precision: str = "auto",
    name: str = "cross-encoder",
    extra: dict[str, object] | None = None,
) -> tuple[CrossEncoder, dict[str, object]]:
    """Fine-tune a fresh cross-encoder on ``rows`` (at most ``max_pairs`` of them, seeded sample;
    grades rescaled to 0-1 over the ``grades`` range) and save it in ``folder`` with ``extra`` in its
    manifest. Returns the model and its training record."""
    from seestocks_rank.models.cross_encoder import CrossEncoder

    if max_pairs is not None:
        rows = rows.sample(min(max_pairs, rows.height), seed=seed)
    lo, hi = grades
    pairs = rows.select(
        _context(rows).alias("context"), "title", ((pl.col("grade") - lo) / max(hi - lo, 1e-9)).alias("label")
    )
    ce = CrossEncoder.from_pretrained(device=device, seed=seed)
    report = ce.train(
        pairs.get_column("context").to_list(),
        pairs.get_column("title").to_list(),
        pairs.get_column("label").to_numpy(),
        budget_seconds=budget_s,
        max_epochs=max_epochs,
        precision=precision,
        seed=seed,
        log=log,
    )
    log(
        f"{name}: {report.pairs_seen} pairs in {report.seconds:.0f} s "
        f"({report.pairs_per_second:.1f}/s, {report.precision})"
    )
    ce.save(folder, extra={"train_pairs": rows.height, "epochs": round(report.epochs, 3), **(extra or {})})
    return ce, {"version": ce.version, "train_pairs": rows.height, **report.__dict__}


def _train_fold_cross_encoders(
    judgments: pl.DataFrame,
    out: Path,
    train: Callable[..., tuple[CrossEncoder, dict[str, object]]],
    *,
    folds: int,
    budget_s: float,
    seed: int,
    log: Callable[[str], None],
) -> tuple[CrossEncoderEnsemble, dict[str, object]]:
    """The k out-of-fold cross-encoders of ``train_relevance_models``, each trained by ``train`` (a
    ``_train_cross_encoder``; model i with seed + i) and saved in ``out/cross_encoder_folds``
    (``folds.json`` last: ``{folds, seed, query_fold}``). Returns their ensemble and a training
    record: summed pairs and seconds, mean epochs and pairs/s, the ``per_fold`` records and where the
    fold of each query is (``fold_assignment``, relative to ``out``; also ``query_folds`` with ``fold_seed``)."""
    from seestocks_rank.models.cross_encoder import CrossEncoderEnsemble

    query_ids = judgments.get_column("query_id")
    if folds > query_ids.n_unique():
        raise ValueError(f"{folds} cross-encoder folds need at least {folds} queries, got {query_ids.n_unique()}")
    folder = out / CROSS_ENCODER_FOLDS_DIR
    shutil.rmtree(folder, ignore_errors=True)
    fold = query_folds(query_ids, folds, seed)
    log(f"cross-encoder: {folds}-fold out-of-fold training, {budget_s / folds:.0f} s each")
    members, per_fold = [], []
    for i in range(folds):
        seen = pl.Series(fold != i)
        ce, record = train(
            judgments.filter(seen),
            folder / f"fold_{i}",
            budget_s=budget_s / folds,
            seed=seed + i,
            name=f"cross-encoder fold {i + 1}/{folds}",
            extra={"fold": i, "folds": folds},
        )
        queries = {
            "train_queries": query_ids.filter(seen).n_unique(),
            "held_out_queries": query_ids.filter(~seen).n_unique(),
        }
        members.append(ce)
        per_fold.append({"fold": i, **queries, **record})
    query_fold = pl.DataFrame({"query_id": query_ids.cast(pl.Utf8), "fold": fold}).unique("query_id").sort("query_id")
    meta = {"folds": folds, "seed": seed, "query_fold": dict(query_fold.iter_rows())}
    (folder / FOLDS_FILE).write_text(json.dumps(meta, indent=1))
    ensemble = CrossEncoderEnsemble(members)

    def total(key: str) -> float:
        return sum(r[key] for r in per_fold)  # type: ignore[misc]

    training = {
        "version": ensemble.version,
        "folds": folds,
        "fold_seed": seed,
        "fold_assignment": f"{CROSS_ENCODER_FOLDS_DIR}/{FOLDS_FILE}",
        "train_pairs": total("train_pairs"),
        "steps": total("steps"),
        "pairs_seen": total("pairs_seen"),
        "seconds": total("seconds"),
        "epochs": total("epochs") / folds,
        "pairs_per_second": total("pairs_per_second") / folds,
        "per_fold": per_fold,
    }
    return ensemble, training


def _fusion_queries(judgments: pl.DataFrame, cross_encoder_share: float, seed: int) -> np.ndarray:
    """Rows of the queries the fusion models train on; the cross-encoder trains on the others."""
    from seestocks_rank.splits import split_groups

    return split_groups(judgments.get_column("query_id"), 1.0 - cross_encoder_share, seed)


def _out_of_fold_scores(judgments: pl.DataFrame, ensemble: CrossEncoderEnsemble, fold: np.ndarray) -> np.ndarray:
    """Each row's score by the member that did not train on its fold (``fold[row]``); rows of fold -1
    (queries no member trained on) get the ensemble's score."""
    pairs = judgments.select(_context(judgments).alias("context"), "title")
    scores = np.zeros(judgments.height, dtype=np.float32)
    for f, model in [*enumerate(ensemble.members), (-1, ensemble)]:
        rows = np.flatnonzero(fold == f)
        if rows.size:
            part = pairs[rows]
            scores[rows] = model.score(part.get_column("context").to_list(), part.get_column("title").to_list())
    return scores


def train_fusion_models(
    judgments: pl.DataFrame,
    text_encoder: TextEncoder,
    out: str | Path,
    *,
    cross_encoder: object | None = None,
    cross_encoder_training: dict[str, object] | None = None,
    cross_encoder_share: float = 0.8,
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    seed: int = 0,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Train both fusion models (``train_fusion_ranker``, with and without the cross-encoder feature)
    on queries with out-of-sample cross-encoder scores, and write them and ``out/training.json``.

    With a single cross-encoder: the queries that ``train_relevance_models`` keeps from it (the same
    seeded split for the same ``cross_encoder_share`` and ``seed``). With the out-of-fold ensemble
    (a ``CrossEncoderEnsemble`` whose folds are in ``out/cross_encoder_folds/folds.json``): all
    queries, each scored by the member that did not train on it (queries absent from the folds, by
    the ensemble).

    Without ``cross_encoder`` the one saved in ``out`` is used (``load_cross_encoder``), and its
    training record is kept from the existing ``out/training.json`` (when that names the same
    cross-encoder version): this retrains the fusion without retraining the cross-encoder."""
    from seestocks_rank.models.cross_encoder import CrossEncoderEnsemble

    out = Path(out)
    cross_encoder_reused = cross_encoder is None
    if cross_encoder is None:
        cross_encoder = load_cross_encoder(out, device=device)
        if cross_encoder is None:
            raise FileNotFoundError(f"no cross-encoder in {out / CROSS_ENCODER_DIR}: train it first")
    if cross_encoder_training is None:
        previous = json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}
        record = previous.get("cross_encoder", {})
        if record.get("refit_on_all_queries") and record.get("version") == cross_encoder.version:
            raise ValueError(
                f"the cross-encoder in {out} was refit on all queries, the fusion's included, so its scores "
                "for them are in-sample: train again with `seestocks-rank train` instead of reusing it"
            )
        cross_encoder_training = record if record.get("version") == cross_encoder.version else {}
        cross_encoder_training = {**cross_encoder_training, "version": cross_encoder.version}
    folds = 1
    if isinstance(cross_encoder, CrossEncoderEnsemble):
        folds, query_fold = _read_query_folds(out)
        if folds != len(cross_encoder.members):
            raise ValueError(f"{len(cross_encoder.members)} cross-encoders for the {folds} folds of {out}")
        fold = (
            judgments.get_column("query_id")
            .cast(pl.Utf8)
            .replace_strict(query_fold, default=-1, return_dtype=pl.Int64)
            .to_numpy()
        )
        log(f"fusion: scoring {judgments.height} pairs out of fold ({folds} folds) for the fusion features")
        scores = _out_of_fold_scores(judgments, cross_encoder, fold)
        feats = relevance_features(judgments, text_encoder, cross_encoder_scores=scores)
    else:
        held_out = judgments.filter(pl.Series(_fusion_queries(judgments, cross_encoder_share, seed)))
        log(f"fusion: scoring {held_out.height} held-out pairs for the fusion features")
        feats = relevance_features(held_out, text_encoder, cross_encoder)
    thresholds = {"relevant_min": relevant_min, "irrelevant_max": irrelevant_max}
    fusion_ce, selection_ce = train_fusion_ranker(feats, fusion_features(feats, True), **thresholds, seed=seed)
    fusion_plain, selection_plain = train_fusion_ranker(feats, fusion_features(feats, False), **thresholds, seed=seed)
    log(f"fusion: chose {selection_ce['chosen']} (with cross-encoder), {selection_plain['chosen']} (without)")
    fusion_ce.save(out / FUSION_WITH_CE)
    fusion_plain.save(out / FUSION_WITHOUT_CE)
    summary = {
        "cross_encoder": cross_encoder_training,
        "cross_encoder_folds": folds,
        "cross_encoder_reused": cross_encoder_reused,
        "fusion_with_cross_encoder": {"version": fusion_ce.version, **selection_ce, **fusion_ce.metrics},
        "fusion_without_cross_encoder": {"version": fusion_plain.version, **selection_plain, **fusion_plain.metrics},
        "fusion_queries": feats.get_column("query_id").n_unique(),
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary
