"""Relevance on human judgments: the judgments file format, ranking metrics, the rankers compared by
``seestocks-rank evaluate``, and the relevance models trained by ``seestocks-rank train``.

A judgments file has ``query_id, query, product_id, title, grade`` (optional ``description, price,
retailer, category_path, image_path``). Each query stands for a category page's context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from seestocks_rank.models.encoders import TextEncoder
from seestocks_rank.models.lexical import bm25_scores, term_coverage, tokens
from seestocks_rank.numeric import robust_z
from seestocks_rank.reranking.fusion import FusionModel

if TYPE_CHECKING:
    from seestocks_rank.models.cross_encoder import CrossEncoder, CrossEncoderEnsemble
from seestocks_rank.evaluation.metrics import grade_thresholds, per_query_metrics, ranked, summarize_metrics
from seestocks_rank.evaluation.selection import LinearBlend, load_ranker
from seestocks_rank.evaluation.statistics import PAIRED_BASELINES, paired_differences

BASE_FEATURES = ("bi_encoder", "bm25", "term_coverage", "title_tokens", "bi_encoder_z", "bm25_z")


CE_FEATURES = ("cross_encoder", "cross_encoder_z")


PRICE_FEATURES = ("price_z",)


CROSS_ENCODER_DIR = "cross_encoder"


CROSS_ENCODER_FOLDS_DIR = "cross_encoder_folds"  # fold_0 .. fold_{k-1} and FOLDS_FILE


FOLDS_FILE = "folds.json"


FUSION_WITH_CE = "fusion_with_cross_encoder"


FUSION_WITHOUT_CE = "fusion_without_cross_encoder"


def _within_query_z(column: str) -> pl.Expr:
    centred = pl.col(column) - pl.col(column).mean().over("query_id")
    return (centred / pl.col(column).std().over("query_id").fill_null(0).clip(1e-6)).fill_nan(0).alias(f"{column}_z")


def _context(judgments: pl.DataFrame) -> pl.Expr:
    """The query text rankers read: ``category_path`` when the judgments have it (else, or where null, ``query``)."""
    context = "category_path" if "category_path" in judgments.columns else "query"
    return pl.coalesce(pl.col(context), pl.col("query"))


def relevance_features(
    judgments: pl.DataFrame,
    text_encoder: TextEncoder,
    cross_encoder: object | None = None,
    *,
    cross_encoder_scores: np.ndarray | None = None,
) -> pl.DataFrame:
    """Per (query, product): bi-encoder cosine, BM25, query-term coverage, title length, their
    within-query z-scores, the cross-encoder score when a model (or ``cross_encoder_scores``, one per
    row, computed elsewhere) is given, and the log-price z within the query when prices exist. The
    query text is ``category_path`` when present, else ``query``."""
    if cross_encoder is not None and cross_encoder_scores is not None:
        raise ValueError("give a cross-encoder or its scores, not both")
    text = judgments.with_columns(_context(judgments).alias("_context"))
    queries = text.get_column("_context").unique(maintain_order=True)
    titles = text.get_column("title").unique(maintain_order=True)
    q_vec = text_encoder.encode(queries.to_list())
    t_vec = text_encoder.encode(titles.to_list())
    q_idx = text.get_column("_context").replace_strict(queries, pl.Series(range(len(queries)))).to_numpy()
    t_idx = text.get_column("title").replace_strict(titles, pl.Series(range(len(titles)))).to_numpy()
    feats = text.with_columns(
        pl.Series("bi_encoder", np.einsum("ij,ij->i", q_vec[q_idx], t_vec[t_idx]), dtype=pl.Float32),
        bm25_scores(text, query="_context", document="title"),
        term_coverage(pl.col("_context"), pl.col("title")).alias("term_coverage"),
        tokens(pl.col("title")).list.len().cast(pl.Float32).alias("title_tokens"),
    )
    if cross_encoder is not None:
        cross_encoder_scores = cross_encoder.score(
            feats.get_column("_context").to_list(), feats.get_column("title").to_list()
        )
    if cross_encoder_scores is not None:
        feats = feats.with_columns(pl.Series("cross_encoder", cross_encoder_scores, dtype=pl.Float32))
    if "price" in feats.columns:
        log_price = pl.col("price").log()
        median = log_price.median().over("query_id")
        mad = (log_price - median).abs().median().over("query_id")
        feats = feats.with_columns(robust_z(log_price, median, mad, 0.05).alias("price_z"))
    z_cols = [c for c in ("bi_encoder", "bm25", "cross_encoder") if c in feats.columns]
    return feats.with_columns(_within_query_z(c) for c in z_cols).drop("_context")


def fusion_features(feats: pl.DataFrame, with_cross_encoder: bool) -> list[str]:
    names = list(BASE_FEATURES) + [c for c in PRICE_FEATURES if c in feats.columns]
    if with_cross_encoder:
        names += [c for c in CE_FEATURES if c in feats.columns]
    return names


@dataclass(frozen=True)
class RelevanceModels:
    """What ``train`` writes and ``evaluate --model`` reads: a cross-encoder (or the ensemble of the
    out-of-fold cross-encoders) and two fusion models."""

    folder: Path
    cross_encoder: object | None
    fusion_with_ce: FusionModel | LinearBlend | None
    fusion_without_ce: FusionModel | LinearBlend | None

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> RelevanceModels:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"no relevance models in {folder}: run `seestocks-rank train` first")
        ce = load_cross_encoder(folder, device=device)

        def fusion(name: str) -> FusionModel | LinearBlend | None:
            return load_ranker(folder / name) if (folder / name).exists() else None

        return cls(folder, ce, fusion(FUSION_WITH_CE), fusion(FUSION_WITHOUT_CE))


def evaluate(
    judgments: pl.DataFrame,
    text_encoder: TextEncoder,
    models: RelevanceModels | None,
    *,
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    k: int = 10,
    seed: int = 0,
    scores: dict[str, pl.DataFrame] | None = None,
) -> dict[str, object]:
    """Rank every query's judged products with each ranker and score them with the same metrics.

    ``scores``: rankers scored elsewhere, by name (``query_id, product_id, score``; a judged pair without
    a score ranks last), e.g. the pipeline's out-of-fold cross-encoder and held-out served ranker; a name
    given here replaces the ranker ``models`` would give.

    Grade thresholds default to the grade range's upper and lower quarter ((2.5, 1.5) on 1-3,
    (2.25, 0.75) on 0-3). Rankers: random, price ascending (when prices exist), BM25 on the title,
    the bi-encoder cosine, the cross-encoder alone, and the fusion models (with and without the
    cross-encoder feature) when ``models`` has them; plus the oracle (grades) as the ceiling.
    """
    lo = float(judgments.get_column("grade").min())
    relevant_min, irrelevant_max = grade_thresholds(judgments.get_column("grade"), relevant_min, irrelevant_max)
    ce = models.cross_encoder if models else None
    feats = relevance_features(judgments, text_encoder, ce)
    rng = np.random.default_rng(seed)
    rankers: dict[str, np.ndarray] = {"random": rng.random(feats.height)}
    if "price" in feats.columns and feats.get_column("price").null_count() < feats.height:
        rankers["price_ascending"] = -feats.get_column("price").fill_null(np.inf).to_numpy()
    rankers["bm25"] = feats.get_column("bm25").to_numpy()
    rankers["bi_encoder"] = feats.get_column("bi_encoder").to_numpy()
    if "cross_encoder" in feats.columns:
        rankers["cross_encoder"] = feats.get_column("cross_encoder").to_numpy()
    for name, model in (
        ("fusion_without_cross_encoder", models and models.fusion_without_ce),
        ("fusion", models and models.fusion_with_ce),
    ):
        if model is not None and all(f in feats.columns for f in model.features):
            rankers[name] = model.predict(feats).get_column("score").to_numpy()
    for name, table in (scores or {}).items():
        keyed = table.select(pl.col("query_id").cast(pl.Utf8), pl.col("product_id").cast(pl.Utf8), "score")
        joined = feats.select(pl.col("query_id").cast(pl.Utf8), pl.col("product_id").cast(pl.Utf8)).join(
            keyed, on=["query_id", "product_id"], how="left", maintain_order="left"
        )
        rankers[name] = joined.get_column("score").cast(pl.Float64).fill_null(-np.inf).to_numpy()
    rankers["oracle"] = feats.get_column("grade").to_numpy()
    per_query = {
        name: per_query_metrics(
            ranked(feats, scores), k=k, relevant_min=relevant_min, irrelevant_max=irrelevant_max, grade_floor=lo
        )
        for name, scores in rankers.items()
    }
    learned = [name for name in ("fusion", "cross_encoder") if name in rankers]
    return {
        "queries": feats.get_column("query_id").n_unique(),
        "judgments": feats.height,
        "relevant_min": relevant_min,
        "irrelevant_max": irrelevant_max,
        "models": {
            "cross_encoder": getattr(ce, "version", None),
            "scored_elsewhere": sorted(scores or {}),
            "fusion": models.fusion_with_ce.version if models and models.fusion_with_ce else None,
        },
        "rankers": {name: summarize_metrics(pq, k) for name, pq in per_query.items()},
        "paired": {
            f"{name}-{baseline}": paired_differences(per_query[name], per_query[baseline], k)
            for name in learned
            for baseline in PAIRED_BASELINES
        },
    }


def load_cross_encoder(folder: str | Path, device: str = "auto") -> CrossEncoder | CrossEncoderEnsemble | None:
    """The cross-encoder of a relevance models folder: the ensemble of ``folder/cross_encoder_folds``
    when that exists, else ``folder/cross_encoder``, else ``None``."""
    from seestocks_rank.models.cross_encoder import CrossEncoder, CrossEncoderEnsemble

    folder = Path(folder)
    if (folder / CROSS_ENCODER_FOLDS_DIR).exists():
        folds, _ = _read_query_folds(folder)
        members = [folder / CROSS_ENCODER_FOLDS_DIR / f"fold_{i}" for i in range(folds)]
        return CrossEncoderEnsemble.load(members, device=device)
    if (folder / CROSS_ENCODER_DIR).exists():
        return CrossEncoder.load(folder / CROSS_ENCODER_DIR, device=device)
    return None


def _read_query_folds(folder: Path) -> tuple[int, dict[str, int]]:
    """``(k, {query_id: fold})`` of the out-of-fold cross-encoders saved in ``folder``."""
    path = folder / CROSS_ENCODER_FOLDS_DIR / FOLDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: the out-of-fold cross-encoders were not fully trained")
    meta = json.loads(path.read_text())
    return int(meta["folds"]), {str(q): int(f) for q, f in meta["query_fold"].items()}
