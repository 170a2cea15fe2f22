"""Stage 2b: the LightGBM lambdarank fusion model (trained on judgments) and the fused scores."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import few_pages_only, preview, timed
from assets.features import RERANKING
from assets.partitions import category_pages_partitions, single_run
from resources import CrossEncoderResource, RankingSettings, StorageResource
from seestocks_rank.embedding_store import EmbeddingStore
from seestocks_rank.features import CatalogSignals, candidate_features
from seestocks_rank.fusion import FusionModel, train_fusion
from seestocks_rank.judgments import judged_pairs
from seestocks_rank.taxonomy import Taxonomy


@dg.asset(group_name=RERANKING, kinds={"lightgbm", "parquet"}, deps=["cross_encoder_model"])
def fusion_model(
    context: dg.AssetExecutionContext,
    judgments: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    taxonomy_centroids: pl.DataFrame,
    taxonomy: pl.DataFrame,
    predicted_categories: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    storage: StorageResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Train the lambdarank fusion on the judged (page, product) pairs; save it under
    ``models/fusion/<version>/``. The table is the model registry row the scoring stage reads."""
    pages = taxonomy_centroids.get_column("category_id")
    signals = CatalogSignals.build(catalog, product_embeddings, Taxonomy.from_nodes(taxonomy), predicted_categories)
    with storage.cached_cross_encoder(cross_encoder.load()) as model:
        pairs = judged_pairs(judgments, catalog, pages)
        judged = candidate_features(pairs, signals, taxonomy_centroids, cross_encoder=model)
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        model = train_fusion(judged, seed=settings.seed)
    folder = model.save(storage.models_dir / "fusion" / model.version)
    importances = model.importances()
    context.add_output_metadata(
        {
            "version": model.version,
            "judged_pairs": judged.height,
            "judgments_unmatched": judgments.height
            - judgments.join(catalog.select("product_id"), on="product_id", how="semi").height,
            "feature_importance_gain": dg.MetadataValue.json(importances),
            **{k: float(v) for k, v in model.metrics.items()},
            **timings,
            "path": dg.MetadataValue.path(str(folder)),
        }
    )
    return pl.DataFrame(
        {
            "version": [model.version],
            "path": [str(folder)],
            "trained_at": [datetime.now(UTC)],
            "features": [json.dumps(model.features)],
            "metrics": [json.dumps(model.metrics)],
            "feature_importance": [json.dumps(importances)],
        }
    )


@dg.asset(
    group_name=RERANKING,
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"lightgbm", "parquet"},
    check_specs=[dg.AssetCheckSpec("scores_finite", asset="fused_scores")],
)
def fused_scores(context: dg.AssetExecutionContext, cross_encoder_features: pl.DataFrame, fusion_model: pl.DataFrame):
    """The fusion model's score and calibrated confidence for every candidate."""
    model = FusionModel.load(Path(fusion_model.get_column("path")[0]))
    timings: dict[str, float] = {}
    with timed(timings, "predict_s"):
        scored = model.predict(cross_encoder_features)
    bad = int((~np.isfinite(scored.get_column("score").to_numpy())).sum()) if scored.height else 0
    yield dg.Output(
        scored,
        metadata={
            "rows": scored.height,
            "model_version": model.version,
            **timings,
            **few_pages_only(
                context, preview=preview(scored.sort("category_id", "score", descending=[False, True]), 10)
            ),
        },
    )
    yield dg.AssetCheckResult(check_name="scores_finite", passed=bad == 0, metadata={"non_finite_scores": bad})
