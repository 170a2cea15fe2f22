"""Stage 1: page centroids ("ideal products") and candidate sets from a FAISS search."""

import dagster as dg
import polars as pl

from assets._metadata import preview, timed
from assets.embeddings import RETRIEVAL
from assets.partitions import category_pages_partitions, single_run
from resources import ComputeResource, RankingSettings, TextModelResource, VisionModelResource
from seestocks_rank.embeddings import image_vectors, vectors, with_vectors
from seestocks_rank.retrieval import build_index, category_centroids, page_prompt, search_candidates
from seestocks_rank.taxonomy import Taxonomy


@dg.asset(group_name=RETRIEVAL, kinds={"numpy", "parquet"})
def taxonomy_centroids(
    context: dg.AssetExecutionContext,
    category_pages: pl.DataFrame,
    taxonomy: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: pl.DataFrame,
    text_model: TextModelResource,
    settings: RankingSettings,
    vlm_checkpoint: pl.DataFrame,
    vision: VisionModelResource,
) -> pl.DataFrame:
    """One profile per page: robust centroid of its tagged products blended with its path prompt,
    plus the similarity and log-price spread of its core products; with product images, also the page's
    visual prototype (robust mean of its products' image vectors and the prompt's image-model text vector)."""
    tree = Taxonomy.from_nodes(taxonomy)
    products, product_vectors = with_vectors(catalog.select("offer_id", "category_id", "price"), product_embeddings)
    page_texts = [page_prompt(p) for p in category_pages.get_column("path").to_list()]
    prompts = text_model.encoder().encode(page_texts)
    images = image_vectors(products, product_embeddings)
    image_model = vision.model_for(vlm_checkpoint) if images is not None else None
    profiles = category_centroids(
        category_pages,
        tree,
        products,
        product_vectors,
        prompts,
        trim=settings.centroid_trim,
        prompt_weight=settings.centroid_prompt_weight,
        image_vectors=images[0] if images is not None else None,
        image_ok=images[1] if images is not None else None,
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
    product_embeddings: pl.DataFrame,
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
    with timed(timings, "index_build_s"):
        index = build_index(vectors(product_embeddings), kind=settings.index_kind, use_gpu=compute.faiss_use_gpu())
    with timed(timings, "search_s"):
        candidates = search_candidates(
            index, centroids, product_embeddings.get_column("offer_id"), settings.candidates_per_page
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
