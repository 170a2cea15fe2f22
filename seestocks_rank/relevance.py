"""Relevance on human judgments: the judgments file format, ranking metrics, the rankers compared by
``seestocks-rank evaluate``, and the relevance models trained by ``seestocks-rank train``.

A judgments file has ``query_id, query, product_id, title, grade`` (optional ``description, price,
retailer, category_path, image_path``). Each query stands for a category page's context.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from seestocks_rank.catalog import read_table
from seestocks_rank.encoders import TextEncoder
from seestocks_rank.fusion import FusionModel, train_fusion
from seestocks_rank.judgments import raise_on_null
from seestocks_rank.lexical import bm25_scores, term_coverage, tokens

if TYPE_CHECKING:
    from seestocks_rank.cross_encoder import CrossEncoder, CrossEncoderEnsemble

REQUIRED = ("query_id", "query", "product_id", "title", "grade")
OPTIONAL = ("description", "price", "retailer", "category_path", "image_path")
BASE_FEATURES = ("bi_encoder", "bm25", "term_coverage", "title_tokens", "bi_encoder_z", "bm25_z")
CE_FEATURES = ("cross_encoder", "cross_encoder_z")
PRICE_FEATURES = ("price_z",)
CROSS_ENCODER_DIR = "cross_encoder"
CROSS_ENCODER_FOLDS_DIR = "cross_encoder_folds"  # fold_0 .. fold_{k-1} and FOLDS_FILE
FOLDS_FILE = "folds.json"
FUSION_WITH_CE = "fusion_with_cross_encoder"
FUSION_WITHOUT_CE = "fusion_without_cross_encoder"


def load_eval_judgments(path: str | Path) -> pl.DataFrame:
    """Read and type a judgments file; raises naming a missing column or the first bad row."""
    raw = read_table(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: judgments lack column(s) {missing}; expected {list(REQUIRED)} (+ {list(OPTIONAL)})")
    typed = raw.select(
        pl.col("query_id").cast(pl.Utf8),
        pl.col("query").cast(pl.Utf8),
        pl.col("product_id").cast(pl.Utf8),
        pl.col("title").cast(pl.Utf8),
        pl.col("grade").cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False),
        *(pl.col(c).cast(pl.Utf8) for c in OPTIONAL if c in raw.columns and c != "price"),
        *([pl.col("price").cast(pl.Utf8).cast(pl.Float64, strict=False)] if "price" in raw.columns else []),
    )
    raise_on_null(raw, typed, REQUIRED, path)
    return typed.unique(["query_id", "product_id"], keep="first", maintain_order=True)


# --- metrics -----------------------------------------------------------------------------------


def ranked(judgments: pl.DataFrame, scores: np.ndarray | pl.Series) -> pl.DataFrame:
    """Rank each query's products by score (descending), ties broken by product id."""
    return (
        judgments.select("query_id", "product_id", "grade")
        .with_columns(pl.Series("score", np.asarray(scores, dtype=np.float64)))
        .sort(["query_id", "score", "product_id"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("query_id").alias("rank"))
    )


def per_query_metrics(
    ranking: pl.DataFrame, *, k: int = 10, relevant_min: float, irrelevant_max: float, grade_floor: float
) -> pl.DataFrame:
    """One row per query (sorted by ``query_id``) of a ``ranked`` frame: ``n`` judged products,
    ``ndcg`` at k, ``relevant`` share of the top k, ``bad_in_top`` (a product with grade <=
    irrelevant_max in the top k) and ``mixed`` (the query has both a bad and a relevant product).

    NDCG uses gain 2^(grade - grade_floor) - 1 and the ideal order of the query's judged products
    (a query whose products all have the floor grade counts as 1)."""
    gain = 2.0 ** (pl.col("grade") - grade_floor) - 1.0
    discount = 1.0 / (pl.col("rank") + 1).log(2)
    in_top = pl.col("rank") <= k
    ideal_rank = pl.col("grade").rank("ordinal", descending=True).over("query_id")
    return (
        ranking.with_columns(ideal_rank.alias("_ideal"))
        .group_by("query_id")
        .agg(
            pl.len().alias("n"),
            (gain * discount).filter(in_top).sum().alias("dcg"),
            (gain / (pl.col("_ideal") + 1).log(2)).filter(pl.col("_ideal") <= k).sum().alias("idcg"),
            (pl.col("grade") >= relevant_min).filter(in_top).mean().alias("relevant"),
            (pl.col("grade") <= irrelevant_max).filter(in_top).any().alias("bad_in_top"),
            ((pl.col("grade") <= irrelevant_max).any() & (pl.col("grade") >= relevant_min).any()).alias("mixed"),
        )
        .with_columns(pl.when(pl.col("idcg") > 0).then(pl.col("dcg") / pl.col("idcg")).otherwise(1.0).alias("ndcg"))
        .drop("dcg", "idcg")
        .sort("query_id")
    )


def summarize_metrics(per_query: pl.DataFrame, k: int = 10) -> dict[str, dict[str, float]]:
    """``ndcg@k``, ``relevant@k`` and ``bad_pages@k`` (the share of queries showing a bad product in
    the top k, over the queries that have both kinds) of ``per_query_metrics``, on all queries and
    on the deep ones (more than k judged)."""

    def summary(df: pl.DataFrame) -> dict[str, float]:
        mixed = df.filter(pl.col("mixed"))
        return {
            f"ndcg@{k}": round(float(df.get_column("ndcg").mean() or 0.0), 4),
            f"relevant@{k}": round(float(df.get_column("relevant").mean() or 0.0), 4),
            f"bad_pages@{k}": round(float(mixed.get_column("bad_in_top").mean() or 0.0), 4),
            "queries": df.height,
            "judgments": int(df.get_column("n").sum() or 0),
            "queries_with_bad_and_relevant": mixed.height,
        }

    return {"all": summary(per_query), "deep": summary(per_query.filter(pl.col("n") > k))}


def ranking_metrics(
    ranking: pl.DataFrame, *, k: int = 10, relevant_min: float, irrelevant_max: float, grade_floor: float
) -> dict[str, dict[str, float]]:
    """``ndcg@k``, ``relevant@k`` and ``bad_pages@k`` on all queries and on the deep ones (> k judged)
    of a ``ranked`` frame: ``summarize_metrics`` of ``per_query_metrics``."""
    per_query = per_query_metrics(
        ranking, k=k, relevant_min=relevant_min, irrelevant_max=irrelevant_max, grade_floor=grade_floor
    )
    return summarize_metrics(per_query, k)


def grade_thresholds(
    grades: pl.Series, relevant_min: float | None = None, irrelevant_max: float | None = None
) -> tuple[float, float]:
    """``(relevant_min, irrelevant_max)``, each defaulting to the grade range's top and bottom quarter:
    relevant = grade >= hi - (hi - lo) / 4, irrelevant = grade <= lo + (hi - lo) / 4 ((2.5, 1.5) on a
    1-3 scale, (2.25, 0.75) on 0-3)."""
    lo, hi = float(grades.min()), float(grades.max())
    return (
        relevant_min if relevant_min is not None else hi - (hi - lo) / 4,
        irrelevant_max if irrelevant_max is not None else lo + (hi - lo) / 4,
    )


SELECTION_SCORE = "ndcg@10(all) + ndcg@10(deep) - bad_pages@10(deep)"


def selection_score(metrics: dict[str, dict[str, float]], k: int = 10) -> float:
    """The fusion's training and selection target: ``ndcg@k`` on all and on deep queries, minus the
    share of deep pages showing a bad product (``ranking_metrics``' output)."""
    return metrics["all"][f"ndcg@{k}"] + metrics["deep"][f"ndcg@{k}"] - metrics["deep"][f"bad_pages@{k}"]


def selection_contributions(per_query: pl.DataFrame, k: int = 10) -> np.ndarray:
    """Each query's share of the selection score (``per_query_metrics`` rows, in their order): they
    add up to ``selection_score`` before its rounding, so paired differences between two rankers give
    the standard error of their score difference (``paired_standard_error``)."""
    deep = pl.col("n") > k
    n_all = per_query.height
    n_deep = per_query.filter(deep).height
    n_deep_mixed = per_query.filter(deep & pl.col("mixed")).height
    return (
        per_query.select(
            pl.col("ndcg") / max(n_all, 1)
            + pl.when(deep).then(pl.col("ndcg") / max(n_deep, 1)).otherwise(0.0)
            - pl.when(deep & pl.col("mixed"))
            .then(pl.col("bad_in_top").cast(pl.Float64) / max(n_deep_mixed, 1))
            .otherwise(0.0)
        )
        .to_series()
        .to_numpy()
    )


def paired_standard_error(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``a.sum() - b.sum()`` over queries drawn independently (per-query
    contributions of two rankers on the same queries): sqrt(n) * sd(a - b)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.sqrt(diff.size) * diff.std(ddof=1)) if diff.size > 1 else 0.0


# --- features for the rankers ------------------------------------------------------------------


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
        feats = feats.with_columns(((log_price - median) / (1.4826 * mad.clip(0.05))).alias("price_z"))
    z_cols = [c for c in ("bi_encoder", "bm25", "cross_encoder") if c in feats.columns]
    return feats.with_columns(_within_query_z(c) for c in z_cols).drop("_context")


def fusion_features(feats: pl.DataFrame, with_cross_encoder: bool) -> list[str]:
    names = list(BASE_FEATURES) + [c for c in PRICE_FEATURES if c in feats.columns]
    if with_cross_encoder:
        names += [c for c in CE_FEATURES if c in feats.columns]
    return names


# --- fusion models ------------------------------------------------------------------------------


@dataclass
class LinearBlend:
    """A weighted sum of within-query z-scored signals, weights fitted by coordinate ascent.

    With only a couple of thousand training queries a tree ensemble over-fits where a few weights on
    well-scaled signals do not; ``train_fusion_ranker`` keeps whichever candidate validates better.
    """

    features: list[str]
    weights: list[float]
    version: str
    metrics: dict[str, float]

    OBJECTIVES = ("ndcg", "selection")

    def predict(self, df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(
            pl.Series("score", _matrix(df, self.features) @ np.asarray(self.weights), dtype=pl.Float64),
            pl.lit(self.version).alias("model_version"),
        )

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": "linear_blend",
            "version": self.version,
            "features": self.features,
            "weights": self.weights,
            "metrics": self.metrics,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def of(cls, features: list[str], weights: list[float], metrics: dict[str, float] | None = None) -> LinearBlend:
        """A blend with given weights (e.g. one signal alone: ``LinearBlend.of(["cross_encoder_z"], [1.0])``)."""
        weights = [float(w) for w in weights]
        version = hashlib.sha1(json.dumps([list(features), weights]).encode()).hexdigest()[:12]
        return cls(list(features), weights, version, dict(metrics or {}))

    @classmethod
    def fit(
        cls,
        feats: pl.DataFrame,
        features: list[str],
        *,
        objective: str = "ndcg",
        relevant_min: float | None = None,
        irrelevant_max: float | None = None,
        grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        rounds: int = 3,
    ) -> LinearBlend:
        """Coordinate ascent from weight 1 on the first feature: each round tries every grid value for
        every weight in turn and keeps strict improvements only (so ties keep the earlier, simpler
        weights). ``objective``: ``"ndcg"`` (the default: NDCG@10 over all queries) or ``"selection"``
        (``selection_score``: NDCG@10 on all and deep queries minus bad_pages@10 on deep ones, with
        the grade thresholds of ``grade_thresholds``)."""
        if objective not in cls.OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; expected one of {cls.OBJECTIVES}")
        relevant_min, irrelevant_max = grade_thresholds(feats.get_column("grade"), relevant_min, irrelevant_max)
        x = _matrix(feats, features)

        def metrics(weights: np.ndarray) -> dict[str, dict[str, float]]:
            return _ranking_metrics(feats, x @ weights, relevant_min, irrelevant_max)

        def target(weights: np.ndarray) -> float:
            m = metrics(weights)
            return m["all"]["ndcg@10"] if objective == "ndcg" else selection_score(m)

        weights = np.zeros(len(features))
        weights[0] = 1.0
        best = target(weights)
        for _ in range(rounds):
            improved = False
            for i in range(len(features)):
                for value in grid:
                    trial = weights.copy()
                    trial[i] = value
                    if not trial.any():
                        continue
                    score = target(trial)
                    if score > best + 1e-6:
                        best, weights, improved = score, trial, True
            if not improved:
                break
        final = metrics(weights)
        return cls.of(
            features,
            weights.tolist(),
            {"train_ndcg@10": final["all"]["ndcg@10"], "train_selection_score": round(selection_score(final), 4)},
        )


def _matrix(df: pl.DataFrame, features: list[str]) -> np.ndarray:
    return df.select([pl.col(f).cast(pl.Float64).fill_null(0.0).fill_nan(0.0) for f in features]).to_numpy()


def _per_query_metrics(
    feats: pl.DataFrame, scores: np.ndarray, relevant_min: float, irrelevant_max: float
) -> pl.DataFrame:
    floor = float(feats.get_column("grade").min())
    return per_query_metrics(
        ranked(feats, scores), relevant_min=relevant_min, irrelevant_max=irrelevant_max, grade_floor=floor
    )


def _ranking_metrics(
    feats: pl.DataFrame, scores: np.ndarray, relevant_min: float, irrelevant_max: float
) -> dict[str, dict[str, float]]:
    return summarize_metrics(_per_query_metrics(feats, scores, relevant_min, irrelevant_max))


def load_ranker(folder: Path) -> FusionModel | LinearBlend:
    """A fusion model folder: LightGBM lambdarank or a linear blend."""
    meta = json.loads((Path(folder) / "model.json").read_text())
    if meta.get("kind") == "linear_blend":
        return LinearBlend(meta["features"], meta["weights"], meta["version"], meta["metrics"])
    return FusionModel.load(folder)


def query_folds(query_ids: pl.Series, folds: int, seed: int) -> np.ndarray:
    """Fold number (0 .. folds-1) of each row: the sorted distinct queries, seeded-shuffled, dealt in turn."""
    distinct = np.array(sorted(query_ids.unique().cast(pl.Utf8).to_list()))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = dict(zip(distinct[order].tolist(), (np.arange(len(distinct)) % folds).tolist(), strict=True))
    return query_ids.cast(pl.Utf8).replace_strict(fold_of, return_dtype=pl.Int64).to_numpy()


def choose_within_one_standard_error(
    scores: dict[str, float], contributions: dict[str, np.ndarray]
) -> tuple[str, str, dict[str, float]]:
    """The one-standard-error rule over candidates listed simplest first: ``(chosen, best, se)`` where
    ``best`` has the highest score (ties to the simpler), ``se[name]`` is the paired standard error of
    ``name``'s score against ``best``'s (from per-query ``contributions``, rounded to 4 decimals like
    the scores) and ``chosen`` is the first candidate scoring at least ``scores[best] - se[name]``."""
    order = list(scores)
    best = max(order, key=lambda name: (scores[name], -order.index(name)))
    se = {name: round(paired_standard_error(contributions[best], contributions[name]), 4) for name in order}
    chosen = next(name for name in order if scores[name] >= scores[best] - se[name])
    return chosen, best, se


def train_fusion_ranker(
    feats: pl.DataFrame,
    features: list[str],
    *,
    relevant_min: float | None = None,
    irrelevant_max: float | None = None,
    folds: int = 4,
    seed: int = 0,
) -> tuple[FusionModel | LinearBlend, dict[str, object]]:
    """Choose the fusion ranker by cross-validation over the queries, then refit it on all of them.

    Candidates, simplest first: ``cross_encoder_only`` (weight 1 on ``cross_encoder_z``, when it is a
    feature, so the fusion cannot validate worse than the cross-encoder alone), ``linear_blend``
    (``LinearBlend.fit`` on NDCG@10), ``linear_blend_selection`` (``LinearBlend.fit`` on the selection
    score) and ``lightgbm`` (lambdarank). Each is fitted on ``folds - 1`` seeded folds of the queries
    and scores the remaining one, in turn, so every query is held out once, and gets the
    ``selection_score`` (SELECTION_SCORE, at ``ranking_metrics``' 4 decimals) of its held-out scores.

    The choice follows the one-standard-error rule: the simplest candidate whose score is within one
    paired standard error (over the held-out queries, ``paired_standard_error``) of the best one's.
    With a few hundred judged queries, a bad page more or less moves the score by as much as the
    gaps between candidates, and a more complex model that leads by less than its own noise did not
    carry its lead to unseen queries here (bench/results/relevance.md). Grade thresholds default as
    in ``grade_thresholds``. Returns the refitted model and the selection record."""
    relevant_min, irrelevant_max = grade_thresholds(feats.get_column("grade"), relevant_min, irrelevant_max)
    n_queries = feats.get_column("query_id").n_unique()
    if n_queries < 2:
        raise ValueError("the fusion ranker needs judgments on at least 2 queries")
    folds = max(2, min(folds, n_queries))
    blend_features = [f for f in features if f.endswith("_z")] or features
    candidates: dict[str, Callable[[pl.DataFrame], FusionModel | LinearBlend]] = {}
    if "cross_encoder_z" in features:
        candidates["cross_encoder_only"] = lambda df: LinearBlend.of(["cross_encoder_z"], [1.0])
    candidates["linear_blend"] = lambda df: LinearBlend.fit(
        df, blend_features, relevant_min=relevant_min, irrelevant_max=irrelevant_max
    )
    candidates["linear_blend_selection"] = lambda df: LinearBlend.fit(
        df, blend_features, objective="selection", relevant_min=relevant_min, irrelevant_max=irrelevant_max
    )
    candidates["lightgbm"] = lambda df: train_fusion(df, group_column="query_id", features=features, seed=seed)

    fold = query_folds(feats.get_column("query_id"), folds, seed + 1)
    held_out = {name: np.zeros(feats.height) for name in candidates}
    for f in range(folds):
        mask = fold == f
        fit, hold = feats.filter(pl.Series(~mask)), feats.filter(pl.Series(mask))
        for name, make in candidates.items():
            held_out[name][mask] = make(fit).predict(hold).get_column("score").to_numpy()
    per_query = {name: _per_query_metrics(feats, s, relevant_min, irrelevant_max) for name, s in held_out.items()}
    metrics = {name: summarize_metrics(pq) for name, pq in per_query.items()}
    scores = {name: round(selection_score(m), 4) for name, m in metrics.items()}
    contributions = {name: selection_contributions(pq) for name, pq in per_query.items()}
    chosen, best, standard_error = choose_within_one_standard_error(scores, contributions)
    deep = next(iter(metrics.values()))["deep"]
    selection = {
        "chosen": chosen,
        "best_held_out": best,
        "rule": "simplest candidate within one paired standard error of the best held-out score",
        "selection_score": SELECTION_SCORE,
        "relevant_min": relevant_min,
        "irrelevant_max": irrelevant_max,
        "folds": folds,
        "held_out_queries": n_queries,
        "held_out_deep_queries": deep["queries"],
        "held_out_deep_queries_with_bad_and_relevant": deep["queries_with_bad_and_relevant"],
        "held_out": {
            name: {
                "ndcg@10": m["all"]["ndcg@10"],
                "ndcg@10.deep": m["deep"]["ndcg@10"],
                "bad_pages@10.deep": m["deep"]["bad_pages@10"],
                "score": scores[name],
                "standard_error_vs_best": standard_error[name],
            }
            for name, m in metrics.items()
        },
    }
    return candidates[chosen](feats), selection


# --- the rankers, side by side ------------------------------------------------------------------


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
) -> dict[str, object]:
    """Rank every query's judged products with each ranker and score them with the same metrics.

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
            "fusion": models.fusion_with_ce.version if models and models.fusion_with_ce else None,
        },
        "rankers": {name: summarize_metrics(pq, k) for name, pq in per_query.items()},
        "paired": {
            f"{name}-{baseline}": paired_differences(per_query[name], per_query[baseline], k)
            for name in learned
            for baseline in PAIRED_BASELINES
        },
    }


PAIRED_BASELINES = ("bm25", "bi_encoder")


def paired_differences(a: pl.DataFrame, b: pl.DataFrame, k: int = 10) -> dict[str, dict[str, float]]:
    """Ranker a minus ranker b on the same queries (``per_query_metrics`` frames), with the standard
    error of each difference over queries: ``ndcg@k`` on all and on deep queries, ``bad_pages@k`` on
    the deep queries with both kinds (negative is better there), and how many of those queries each
    ranker alone keeps clean (``deep_pages_only_a_clean`` / ``_only_b_clean``)."""
    both = a.join(b, on="query_id", suffix="_b", maintain_order="left")
    deep = both.filter(pl.col("n") > k)
    mixed = deep.filter(pl.col("mixed"))

    def difference(df: pl.DataFrame, column: str) -> dict[str, float]:
        x = df.get_column(column).cast(pl.Float64).to_numpy()
        y = df.get_column(f"{column}_b").cast(pl.Float64).to_numpy()
        n = max(x.size, 1)  # the mean difference: the summed one over n, and so its standard error
        return {
            "difference": round(float((x - y).sum()) / n, 4),
            "standard_error": round(paired_standard_error(x, y) / n, 4),
        }

    return {
        f"ndcg@{k}": difference(both, "ndcg"),
        f"ndcg@{k}.deep": difference(deep, "ndcg"),
        f"bad_pages@{k}.deep": difference(mixed, "bad_in_top"),
        "deep_pages_only_a_clean": mixed.filter(~pl.col("bad_in_top") & pl.col("bad_in_top_b")).height,
        "deep_pages_only_b_clean": mixed.filter(pl.col("bad_in_top") & ~pl.col("bad_in_top_b")).height,
    }


def load_cross_encoder(folder: str | Path, device: str = "auto") -> CrossEncoder | CrossEncoderEnsemble | None:
    """The cross-encoder of a relevance models folder: the ensemble of ``folder/cross_encoder_folds``
    when that exists, else ``folder/cross_encoder``, else ``None``."""
    from seestocks_rank.cross_encoder import CrossEncoder, CrossEncoderEnsemble

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
    from seestocks_rank.cross_encoder import CrossEncoder

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
    from seestocks_rank.cross_encoder import CrossEncoderEnsemble

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
    from seestocks_rank.fusion import split_groups

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
    from seestocks_rank.cross_encoder import CrossEncoderEnsemble

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
