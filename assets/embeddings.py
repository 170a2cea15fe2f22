"""Product embeddings, incremental: only products whose content changed are re-encoded."""

import dagster as dg
import polars as pl

from assets._metadata import timed
from resources import StorageResource, TextModelResource, VisionModelResource
from seestocks_rank.embedding_store import EmbeddingStore
from seestocks_rank.embeddings import embed_products

RETRIEVAL = "retrieval"


@dg.asset(group_name=RETRIEVAL, kinds={"pytorch", "numpy"}, io_manager_key="embedding_store_io")
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
    previous = EmbeddingStore.open(storage.embeddings_dir)
    with timed(timings, "embed_s"):
        run = embed_products(
            catalog,
            encoder,
            storage.embeddings_dir,
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
