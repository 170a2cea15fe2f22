"""Stage 1: page centroids ("ideal products") and candidate sets from a FAISS search."""

import dagster as dg
import polars as pl

from assets._metadata import preview
from assets.embeddings import RETRIEVAL
from assets.partitions import category_pages_partitions, single_run
from resources import ComputeResource, RankingSettings, StorageResource, TextModelResource, VisionModelResource
from seestocks_rank.embedding_store import EmbeddingStore
from seestocks_rank.retrieval import page_profiles, page_prompt, retrieve_candidates
from seestocks_rank.taxonomy import Taxonomy


@dg.asset(group_name=RETRIEVAL, kinds={"numpy", "parquet"})
def taxonomy_centroids(
    context: dg.AssetExecutionContext,
    category_pages: pl.DataFrame,
    taxonomy: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    text_model: TextModelResource,
    storage: StorageResource,
    settings: RankingSettings,
    vlm_checkpoint: pl.DataFrame,
    vision: VisionModelResource,
) -> pl.DataFrame:
    """One profile per page: robust centroid of its tagged products blended with its path prompt,
    plus the similarity and log-price spread of its core products; with product images, also the page's
    visual prototype (robust mean of its products' image vectors and the prompt's image-model text vector)."""
    page_texts = [page_prompt(p) for p in category_pages.get_column("path").to_list()]
    image_model = vision.model_for(vlm_checkpoint) if product_embeddings.has_images else None
    with storage.cached_text_encoder(text_model.encoder()) as encoder:
        prompt_vectors = encoder.encode(page_texts)
    profiles = page_profiles(
        category_pages,
        Taxonomy.from_nodes(taxonomy),
        catalog,
        product_embeddings,
        prompt_vectors,
        trim=settings.centroid_trim,
        prompt_weight=settings.centroid_prompt_weight,
        visual_prompt_vectors=image_model.encode_texts(page_texts) if image_model is not None else None,
        visual_prompt_weight=vision.visual_prompt_weight,
    )
    context.add_output_metadata(
        {
            "pages": profiles.height,
            "pages_without_products": profiles.filter(pl.col("n_members") == 0).height,
            "preview": preview(profiles, 10),
        }
    )
    return profiles


@dg.asset(
    group_name=RETRIEVAL,
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"faiss", "parquet"},
)
def candidate_sets(
    context: dg.AssetExecutionContext,
    taxonomy_centroids: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    compute: ComputeResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Nearest products to each page centroid: ``candidate_multiplier`` x ``page_size`` per page."""
    keys = [int(k) for k in context.partition_keys]
    centroids = taxonomy_centroids.filter(pl.col("category_id").is_in(keys))
    missing = sorted(set(keys) - set(centroids.get_column("category_id").to_list()))
    if missing:
        raise ValueError(f"no centroid for page(s) {missing[:10]}: re-materialize taxonomy_centroids")
    timings: dict[str, float] = {}
    candidates = retrieve_candidates(
        centroids,
        product_embeddings,
        settings.candidates_per_page,
        index_kind=settings.index_kind,
        use_gpu=compute.faiss_use_gpu(),
        timings=timings,
    )
    context.add_output_metadata(
        {
            "pages": len(keys),
            "candidates": candidates.height,
            "per_page": settings.candidates_per_page,
            "index": settings.index_kind,
            **timings,
            "search_ms_per_page": round(1000 * timings["search_s"] / max(len(keys), 1), 3),
        }
    )
    return candidates
