"""Stage 2, reranking: the catalog's predicted categories, the signals per (page, candidate) and the fused scores."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets._metadata import few_pages_only, preview, timed
from assets.partitions import category_pages_partitions, single_run
from resources import CatalogContextResource, CrossEncoderResource, RankingSettings, StorageResource, TextModelResource
from seestocks_rank.evaluation.selection import load_ranker
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.categorize import predict_categories
from seestocks_rank.reranking.features import candidate_features
from seestocks_rank.reranking.out_of_category import OutOfCategoryFilter
from seestocks_rank.reranking.ranker import score_candidates
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.store.embedding_store import EmbeddingStore


@dg.asset(kinds={"numpy", "parquet"})
def predicted_categories(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    taxonomy: pl.DataFrame,
    text_model: TextModelResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """A taxonomy category per offer from the hierarchical tree walk over the title embeddings (node
    prototypes from the node prompts and the catalog's own tags, sibling disambiguation); offers whose
    title and tag did not change since the last run keep their prediction."""
    tree = Taxonomy.from_nodes(taxonomy)
    products = catalog.select("offer_id", "title", "category_id")
    title_vectors = product_embeddings.vectors("text", products.get_column("offer_id"))
    timings: dict[str, float] = {}
    with timed(timings, "categorize_s"):
        previous = storage.tables.read_if_exists("predicted_categories")
        with storage.cached_text_encoder(text_model.encoder()) as encoder:  # node prompts: same every night
            predicted = predict_categories(products, title_vectors, tree, encoder, previous=previous)
    walked = predicted.height if previous is None else predicted.join(previous, on="content_hash", how="anti").height
    tags = products.get_column("category_id").to_numpy()
    calls = predicted.get_column("predicted_category_id").to_numpy()
    agrees = tree.is_within(calls, tags) | tree.is_within(tags, calls)  # same branch as the retailer's tag
    context.add_output_metadata(
        {
            "offers": predicted.height,
            "walked": walked,
            "categories": len(tree),
            "agrees_with_tag_share": round(float(agrees.mean()), 4) if predicted.height else 0.0,
            "disambiguated_share": round(float(predicted.get_column("disambiguated").mean() or 0.0), 4),
            **timings,
            "preview": preview(predicted, 10),
        }
    )
    return predicted


@dg.asset(
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"polars", "parquet"},
    deps=["cross_encoder_model"],
)
def cross_encoder_features(
    context: dg.AssetExecutionContext,
    candidate_sets: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    predicted_categories: pl.DataFrame,
    taxonomy_centroids: pl.DataFrame,
    taxonomy: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    storage: StorageResource,
    settings: RankingSettings,
    catalog_context: CatalogContextResource,
) -> pl.DataFrame:
    """Title-category coherence (the cross-encoder reads page path and title jointly, plus bi-encoder
    and lexical signals), taxonomic distance of the assigned and the predicted category, price fit and
    visual similarity per candidate; and the out-of-category filter (``out_of_category_reason`` names the
    signal that disagrees: title, visual or price). Pairs the same cross-encoder scored on an earlier run
    are not scored again (``StorageResource.cached_cross_encoder``)."""
    timings: dict[str, float] = {}
    with timed(timings, "catalog_context_s"):
        scoring = catalog_context.for_run(context.run_id, catalog, product_embeddings, taxonomy, predicted_categories)
    ooc_filter = OutOfCategoryFilter(scoring) if settings.out_of_category_filter else None
    with storage.cached_cross_encoder(cross_encoder.load()) as model:
        features = candidate_features(
            candidate_sets, scoring, taxonomy_centroids, cross_encoder=model, out_of_category_filter=ooc_filter,
            timings=timings,
        )  # fmt: skip
    if model is not None:
        timings |= {"cross_encoder_pairs_scored": model.computed, "cross_encoder_pairs_reused": model.reused}
    flagged = int(features.get_column("out_of_category").sum()) if "out_of_category" in features.columns else 0
    images = ooc_filter is not None and scoring.image_rows().any()
    null_share = {c: round(features.get_column(c).null_count() / max(features.height, 1), 3) for c in FEATURE_COLUMNS}
    context.add_output_metadata(
        {
            "rows": features.height,
            "pages": len(context.partition_keys),
            "out_of_category": flagged,
            "null_share": dg.MetadataValue.json(null_share),
            **({"visual_check": dg.MetadataValue.json(ooc_filter.visual_check())} if images else {}),
            **timings,
            **few_pages_only(context, preview=preview(features, 10)),
        }
    )
    return features


@dg.asset(
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"lightgbm", "parquet"},
    check_specs=[dg.AssetCheckSpec("scores_finite", asset="fused_scores", blocking=True)],
)
def fused_scores(context: dg.AssetExecutionContext, cross_encoder_features: pl.DataFrame, fusion_model: pl.DataFrame):
    """The fusion model's score, calibrated confidence and each signal's contribution for every candidate."""
    model = load_ranker(Path(fusion_model.get_column("path")[0]))
    timings: dict[str, float] = {}
    with timed(timings, "predict_s"):
        scored = score_candidates(model, cross_encoder_features)
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
