"""Out-of-fold cross-encoder scores for the pipeline's fusion: the fusion trains beside a cross-encoder
fine-tuned on the same judgments, so each judged pair's feature must come from a model that never saw it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from seestocks_rank.models.cross_encoder import META_FILE
from seestocks_rank.splits import query_folds

if TYPE_CHECKING:
    from seestocks_rank.models.cross_encoder import CrossEncoder


OUT_OF_FOLD_FILE = "out_of_fold.parquet"  # beside a cross-encoder: its training pairs' out-of-fold scores


def fit_cross_encoder_out_of_fold(
    rows: pl.DataFrame,
    *,
    folds: int,
    budget_s: float,
    max_epochs: float,
    seed: int,
    device: str,
    log: Callable[[str], None] = print,
) -> tuple[CrossEncoder, pl.DataFrame, dict[str, object]]:
    """The cross-encoder a fusion can be trained beside without leaking: ``folds`` models, each
    fine-tuned on the other folds' queries (``query_folds``, grouped by ``query_id``), score the pairs
    of their held-out fold; then the served model is refit on every row.

    ``rows``: ``query_id, query, product_id, title, grade``. Half of ``budget_s`` goes to the fold
    models (``budget_s / (2 * folds)`` each), half to the refit, so the nightly's time is the budget.
    Fewer than two queries: no fold models, and every pair's out-of-fold score is null (its only
    model trained on it). Returns the refit model, the out-of-fold table (``query_id, product_id,
    fold, cross_encoder_oof``) and a training record."""
    from seestocks_rank.models.cross_encoder import CrossEncoder

    lo, hi = float(rows.get_column("grade").min()), float(rows.get_column("grade").max())
    labels = ((rows.get_column("grade") - lo) / max(hi - lo, 1e-9)).to_numpy()
    queries, titles = rows.get_column("query").to_list(), rows.get_column("title").to_list()
    folds = min(folds, rows.get_column("query_id").n_unique())
    fold = query_folds(rows.get_column("query_id"), folds, seed) if folds >= 2 else np.full(rows.height, -1)
    oof = np.full(rows.height, np.nan, dtype=np.float32)
    per_fold = []
    for f in range(folds if folds >= 2 else 0):
        seen, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        member = CrossEncoder.from_pretrained(device=device, seed=seed + f)
        report = member.train(
            [queries[i] for i in seen],
            [titles[i] for i in seen],
            labels[seen],
            budget_seconds=budget_s / (2 * folds),
            max_epochs=max_epochs,
            seed=seed + f,
            log=log,
        )
        oof[held] = member.score([queries[i] for i in held], [titles[i] for i in held])
        per_fold.append({"fold": f, "train_pairs": int(seen.size), "held_out_pairs": int(held.size), **report.__dict__})
        log(f"cross-encoder fold {f + 1}/{folds}: {report.pairs_seen} pairs seen, scored {held.size} held-out pairs")
    served = CrossEncoder.from_pretrained(device=device, seed=seed)
    report = served.train(
        queries,
        titles,
        labels,
        budget_seconds=budget_s / 2 if folds >= 2 else budget_s,
        max_epochs=max_epochs,
        seed=seed,
        log=log,
    )
    table = rows.select(
        pl.col("query_id").cast(pl.Utf8),
        pl.col("product_id").cast(pl.Utf8),
        pl.Series("fold", fold, dtype=pl.Int32),
        pl.Series("cross_encoder_oof", oof, dtype=pl.Float32).fill_nan(None),
    )
    record = {"train_pairs": rows.height, "folds": folds, "per_fold": per_fold, **report.__dict__}
    return served, table, record


def write_out_of_fold(table: pl.DataFrame, path: Path, version: str) -> None:
    """Save ``fit_cross_encoder_out_of_fold``'s table for the served model ``version`` (atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    table.with_columns(pl.lit(version).alias("model_version")).write_parquet(tmp)
    tmp.replace(path)


def read_out_of_fold(path: Path, version: str) -> pl.DataFrame | None:
    """The out-of-fold table saved for the cross-encoder ``version``; ``None`` when absent or another
    model's."""
    if not path.exists():
        return None
    table = pl.read_parquet(path)
    if table.height and table.get_column("model_version")[0] != version:
        return None
    return table.drop("model_version")


def saved_out_of_fold(folder: Path) -> tuple[pl.DataFrame | None, bool]:
    """The out-of-fold table saved beside the cross-encoder in ``folder`` (``None``: it has none, or another
    model's) and whether that model was trained on the pipeline's judgments (its manifest records their
    fingerprint, ``training_data``)."""
    meta = Path(folder) / META_FILE
    manifest = json.loads(meta.read_text()) if meta.exists() else {}
    return read_out_of_fold(Path(folder) / OUT_OF_FOLD_FILE, manifest.get("version", "")), "training_data" in manifest


def leak_free_cross_encoder_scores(
    judged: pl.DataFrame,
    out_of_fold: pl.DataFrame | None,
    *,
    trained_on_judgments: bool,
    score: Callable[[pl.DataFrame], np.ndarray] | None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """``judged`` (``category_id, offer_id`` ...) with a ``cross_encoder_score`` from no model that trained on
    its pair: pairs the served cross-encoder trained on take their out-of-fold score (null when there was
    none); pairs it never saw get its score, from ``score`` (the served model scoring the rows it is given,
    called on those rows only; ``None``: there is no model, the frame is returned as is).
    ``out_of_fold``: the served model's table (``query_id, product_id, cross_encoder_oof``), ``None`` when
    it has none: then every pair is scored when it was trained elsewhere, and none (null) when
    ``trained_on_judgments`` (a model trained on these judgments without out-of-fold scores). Returns the
    frame and the count of each case."""
    if score is None:
        return judged, {"no_cross_encoder": judged.height}
    if out_of_fold is None and trained_on_judgments:
        return judged.with_columns(pl.lit(None, pl.Float32).alias("cross_encoder_score")), {
            "nulled_in_sample": judged.height
        }
    scores = np.full(judged.height, np.nan, dtype=np.float32)
    if out_of_fold is None:
        scores[:] = score(judged)
        counts = {"model_trained_elsewhere": judged.height}
    else:
        keyed = out_of_fold.select(
            pl.col("query_id").alias("_page"),
            pl.col("product_id").alias("_offer"),
            pl.col("cross_encoder_oof").fill_null(np.nan),
            pl.lit(True).alias("_trained"),
        )
        joined = judged.select(
            pl.col("category_id").cast(pl.Utf8).alias("_page"), pl.col("offer_id").cast(pl.Utf8).alias("_offer")
        ).join(keyed, on=["_page", "_offer"], how="left", maintain_order="left")
        trained = joined.get_column("_trained").fill_null(False).to_numpy()
        scores[trained] = joined.get_column("cross_encoder_oof").to_numpy()[trained]
        if (~trained).any():
            scores[~trained] = score(judged.filter(pl.Series(~trained)))
        counts = {
            "out_of_fold": int((trained & ~np.isnan(scores)).sum()),
            "nulled_no_fold": int((trained & np.isnan(scores)).sum()),
            "unseen_by_model": int((~trained).sum()),
        }
    column = pl.Series("cross_encoder_score", scores, dtype=pl.Float32).fill_nan(None)
    return judged.with_columns(column), counts
