"""Product embeddings, incremental: only products whose content changed are re-encoded."""

import dagster as dg
import polars as pl

from assets._metadata import timed
from resources import StorageResource, TextModelResource, VisionModelResource
from seestocks_rank.embeddings import embed_products

RETRIEVAL = "retrieval"


@dg.asset(group_name=RETRIEVAL, kinds={"pytorch", "parquet"})
def product_embeddings(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    text_model: TextModelResource,
    storage: StorageResource,
    vlm_checkpoint: pl.DataFrame,
    vision: VisionModelResource,
) -> pl.DataFrame:
    """Title embeddings (all-MiniLM-L6-v2 by default) per offer, reusing last run's unchanged rows; with
    product images, also image embeddings from ``vlm_checkpoint`` and the fused retrieval vector."""
    timings: dict[str, float] = {}
    encoder = text_model.encoder()
    image_model = vision.model_for(vlm_checkpoint)
    previous = storage.store.read_if_exists("product_embeddings")
    with timed(timings, "embed_s"):
        run = embed_products(
            catalog, encoder, previous, image_model, text_weight=vision.text_weight, image_weight=vision.image_weight
        )
    if image_model is not None:
        errors = run.table.get_column("image_error").drop_nulls().value_counts().sort("image_error").iter_rows()
        context.add_output_metadata(
            {
                "image_model_version": image_model.model_version,
                "with_image_embedding": run.table.height - run.table.get_column("image_embedding").null_count(),
                "image_errors": dg.MetadataValue.json({k: int(v) for k, v in errors}),
            }
        )
    context.add_output_metadata(
        {
            "rows": run.table.height,
            "encoded": run.encoded,
            "reused": run.reused,
            "dropped": run.dropped,
            "model_version": encoder.model_version,
            "device": encoder.device,
            "dim": encoder.dim,
            **timings,
        }
    )
    return run.table
