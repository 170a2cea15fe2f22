"""Stage 2a: the catalog's predicted categories, and the reranking signals per (page, candidate)."""

import dagster as dg
import polars as pl

from assets._metadata import preview, timed
from assets.partitions import category_pages_partitions, single_run
from resources import CrossEncoderResource, RankingSettings, TextModelResource
from seestocks_rank.categorize import OutOfCategoryConfig, out_of_category, out_of_category_signals, predict_categories
from seestocks_rank.embeddings import image_vectors, vectors, with_vectors
from seestocks_rank.features import FEATURE_COLUMNS, add_cross_encoder_scores, compute_features
from seestocks_rank.taxonomy import Taxonomy

RERANKING = "reranking"


@dg.asset(group_name=RERANKING, kinds={"numpy", "parquet"})
def predicted_categories(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    product_embeddings: pl.DataFrame,
    taxonomy: pl.DataFrame,
    text_model: TextModelResource,
) -> pl.DataFrame:
    """A taxonomy category per offer from the hierarchical tree walk over the title embeddings (node
    prototypes from the node prompts and the catalog's own tags, sibling disambiguation), once per run."""
    tree = Taxonomy.from_nodes(taxonomy)
    products, title_vectors = with_vectors(
        catalog.select("offer_id", "title", "category_id"), product_embeddings, "text_embedding"
    )
    timings: dict[str, float] = {}
    with timed(timings, "categorize_s"):
        predicted = predict_categories(products, title_vectors, tree, text_model.encoder())
    tags = products.get_column("category_id").to_numpy()
    calls = predicted.get_column("predicted_category_id").to_numpy()
    agrees = tree.is_within(calls, tags) | tree.is_within(tags, calls)  # same branch as the retailer's tag
    context.add_output_metadata(
        {
            "offers": predicted.height,
            "categories": len(tree),
            "agrees_with_tag_share": round(float(agrees.mean()), 4) if predicted.height else 0.0,
            "disambiguated_share": round(float(predicted.get_column("disambiguated").mean() or 0.0), 4),
            **timings,
            "preview": preview(predicted, 10),
        }
    )
    return predicted


@dg.asset(
    group_name=RERANKING,
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"polars", "parquet"},
    deps=["cross_encoder_model"],
)
def cross_encoder_features(
    context: dg.AssetExecutionContext,
    candidate_sets: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: pl.DataFrame,
    predicted_categories: pl.DataFrame,
    taxonomy_centroids: pl.DataFrame,
    taxonomy: pl.DataFrame,
    cross_encoder: CrossEncoderResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Title-category coherence (the cross-encoder reads page path and title jointly, plus bi-encoder
    and lexical signals), taxonomic distance of the assigned and the predicted category, price fit and
    visual similarity per candidate; and the out-of-category filter (``out_of_category_reason`` names the
    signal that disagrees: title, visual or price)."""
    timings: dict[str, float] = {}
    tree = Taxonomy.from_nodes(taxonomy)
    rows = catalog.select("offer_id", "title", "category_id", "price").join(
        predicted_categories.select("offer_id", "predicted_category_id"), on="offer_id", how="left"
    )
    rows = rows.join(product_embeddings.select("offer_id", "text_embedding"), on="offer_id", how="left")
    products, product_vectors = with_vectors(rows, product_embeddings)
    title_vectors = vectors(products, "text_embedding")  # the title vote's space (no image fusion)
    products = products.drop("text_embedding")
    images = image_vectors(products, product_embeddings)
    with timed(timings, "features_s"):
        features = compute_features(
            candidate_sets,
            products,
            product_vectors,
            taxonomy_centroids,
            tree,
            image_vectors=images[0] if images is not None else None,
            image_ok=images[1] if images is not None else None,
        )
    with timed(timings, "cross_encoder_s"):
        features = add_cross_encoder_scores(features, products, taxonomy_centroids, cross_encoder.load())
    flagged = 0
    if settings.out_of_category_filter:
        with timed(timings, "out_of_category_s"):
            signals = out_of_category_signals(
                features,
                products,
                product_vectors,
                taxonomy_centroids,
                tree,
                title_vectors=title_vectors,
                image_vectors=images[0] if images is not None else None,
                image_ok=images[1] if images is not None else None,
            )
            features = out_of_category(signals, config=OutOfCategoryConfig())
        flagged = int(features.get_column("out_of_category").sum())
    null_share = {c: round(features.get_column(c).null_count() / max(features.height, 1), 3) for c in FEATURE_COLUMNS}
    context.add_output_metadata(
        {
            "rows": features.height,
            "pages": len(context.partition_keys),
            "out_of_category": flagged,
            "null_share": dg.MetadataValue.json(null_share),
            **timings,
            "preview": preview(features, 10),
        }
    )
    return features
