"""Stage 2a: reranking signals per (page, candidate)."""

import dagster as dg
import polars as pl

from assets._metadata import preview, timed
from assets.partitions import category_pages_partitions, single_run
from seestocks_rank.embeddings import with_vectors
from seestocks_rank.features import FEATURE_COLUMNS, compute_features
from seestocks_rank.taxonomy import Taxonomy

RERANKING = "reranking"


@dg.asset(
    group_name=RERANKING,
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"polars", "parquet"},
)
def cross_encoder_features(
    context: dg.AssetExecutionContext,
    candidate_sets: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: pl.DataFrame,
    taxonomy_centroids: pl.DataFrame,
    taxonomy: pl.DataFrame,
) -> pl.DataFrame:
    """Title-category coherence, taxonomic distance, price fit and visual similarity per candidate."""
    timings: dict[str, float] = {}
    products, product_vectors = with_vectors(
        catalog.select("offer_id", "title", "category_id", "price"), product_embeddings
    )
    with timed(timings, "features_s"):
        features = compute_features(
            candidate_sets, products, product_vectors, taxonomy_centroids, Taxonomy.from_nodes(taxonomy)
        )
    null_share = {c: round(features.get_column(c).null_count() / max(features.height, 1), 3) for c in FEATURE_COLUMNS}
    context.add_output_metadata(
        {
            "rows": features.height,
            "pages": len(context.partition_keys),
            "null_share": dg.MetadataValue.json(null_share),
            **timings,
            "preview": preview(features, 10),
        }
    )
    return features
