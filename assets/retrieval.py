"""Stage 1, candidate retrieval: product embeddings (incremental), page centroids and candidate sets."""

import dagster as dg
import polars as pl

from assets._metadata import preview, timed
from assets.partitions import category_pages_partitions, page_ids, single_run
from resources import ComputeResource, RankingSettings, StorageResource, TextModelResource, VisionModelResource
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.retrieval.centroids import page_centroids, page_prompt, tagged_products
from seestocks_rank.retrieval.embeddings import embed_products
from seestocks_rank.retrieval.index import add_tagged_products, retrieve_candidates
from seestocks_rank.store.embedding_store import EmbeddingStore


@dg.asset(kinds={"pytorch", "numpy"}, io_manager_key="embedding_store_io")
def product_embeddings(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    text_model: TextModelResource,
    storage: StorageResource,
    vlm_checkpoint: pl.DataFrame,
    vision: VisionModelResource,
) -> EmbeddingStore:
    """Title embeddings (all-MiniLM-L6-v2 by default) per offer in a memory-mapped store, reusing last
    run's unchanged rows; with product images, also image embeddings from ``vlm_checkpoint`` and the
    fused retrieval vector."""
    timings: dict[str, float] = {}
    encoder = text_model.encoder()
    image_model = vision.model_for(vlm_checkpoint)
    previous = EmbeddingStore.open(storage.root.embeddings)
    with timed(timings, "embed_s"):
        run = embed_products(
            catalog,
            encoder,
            storage.root.embeddings,
            previous,
            image_model,
            text_weight=vision.text_weight,
            image_weight=vision.image_weight,
        )
    manifest = run.store.manifest
    if image_model is not None:
        errors = manifest.get_column("image_error").drop_nulls().value_counts().sort("image_error").iter_rows()
        context.add_output_metadata(
            {
                "image_model_version": image_model.model_version,
                "with_image_embedding": int(manifest.get_column("has_image").sum()),
                "images_encoded": run.images_encoded,
                "image_errors": dg.MetadataValue.json({k: int(v) for k, v in errors}),
            }
        )
    context.add_output_metadata(
        {
            "rows": manifest.height,
            "encoded": run.encoded,
            "reused": run.reused,
            "dropped": run.dropped,
            "compacted": run.compacted,
            "chunks": manifest.get_column("chunk").n_unique(),
            "model_version": encoder.model_version,
            "device": encoder.device,
            "dim": encoder.dim,
            **timings,
        }
    )
    return run.store


@dg.asset(
    kinds={"numpy", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "pages_have_enough_products",
            asset="taxonomy_centroids",
            description=(
                "Pages with fewer tagged products than min_products_per_page: their centroid leans on the prompt."
            ),
        ),
    ],  # fmt: skip
)
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
):
    """One centroid row per page: robust centroid of its tagged products blended with its path prompt,
    plus the similarity and log-price spread of its core products; with product images, also the page's
    visual prototype (robust mean of its products' image vectors and the prompt's image-model text vector)."""
    page_texts = [page_prompt(p) for p in category_pages.get_column("path").to_list()]
    image_model = vision.model_for(vlm_checkpoint) if product_embeddings.has_images else None
    with storage.cached_text_encoder(text_model.encoder()) as encoder:
        prompt_vectors = encoder.encode(page_texts)
    centroids = page_centroids(
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
    sparse = centroids.filter(pl.col("n_members") < settings.min_products_per_page)
    yield dg.Output(
        centroids,
        metadata={
            "pages": centroids.height,
            "pages_without_products": centroids.filter(pl.col("n_members") == 0).height,
            "preview": preview(centroids, 10),
        },
    )
    yield dg.AssetCheckResult(
        check_name="pages_have_enough_products",
        passed=sparse.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"pages": dg.MetadataValue.json(sparse.select("category_id", "path", "n_members").rows()[:50])},
    )


@dg.asset(
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"faiss", "parquet"},
)
def candidate_sets(
    context: dg.AssetExecutionContext,
    category_pages: pl.DataFrame,
    taxonomy_centroids: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    catalog: pl.DataFrame,
    taxonomy: pl.DataFrame,
    compute: ComputeResource,
    settings: RankingSettings,
) -> pl.DataFrame:
    """Nearest products to each page centroid (``candidate_multiplier`` x ``page_size`` per page) plus the
    page's tagged products the search missed (as many again at most, nearest the centroid first), so
    retrieval only adds to what the tags got right. A page of the run that left the pages file since the run
    was planned gets no candidates (and is not published)."""
    keys = page_ids(context.partition_keys)
    active = set(category_pages.get_column("category_id").to_list())
    retired = sorted(set(keys) - active)
    if retired:
        context.log.warning(f"{len(retired)} page(s) of this run are no longer active pages: {retired[:10]}")
    centroids = taxonomy_centroids.filter(pl.col("category_id").is_in(keys))
    stale = sorted(set(keys) & active - set(centroids.get_column("category_id").to_list()))
    if stale:
        raise ValueError(f"no centroid for page(s) {stale[:10]}: materialize taxonomy_centroids (pages added since)")
    timings: dict[str, float] = {}
    candidates = retrieve_candidates(
        centroids,
        product_embeddings,
        settings.candidates_per_page,
        index_kind=settings.index_kind,
        use_gpu=compute.faiss_use_gpu(),
        timings=timings,
    )
    searched = candidates.height
    if settings.tagged_candidates:
        with timed(timings, "tagged_s"):
            tagged = tagged_products(catalog, centroids.select("category_id"), Taxonomy.from_nodes(taxonomy))
            candidates = add_tagged_products(
                candidates, centroids, tagged, product_embeddings, settings.candidates_per_page
            )
    context.add_output_metadata(
        {
            "pages": len(keys),
            "candidates": candidates.height,
            "tagged_added": candidates.height - searched,
            "per_page": settings.candidates_per_page,
            "index": settings.index_kind,
            **timings,
            "search_ms_per_page": round(1000 * timings["search_s"] / max(len(keys), 1), 3),
        }
    )
    return candidates
