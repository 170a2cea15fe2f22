"""Product embeddings, incremental: only products whose content changed are re-encoded."""

import dagster as dg
import polars as pl

from assets._metadata import timed
from resources import StorageResource, TextModelResource
from seestocks_rank.embeddings import embed_products

RETRIEVAL = "retrieval"


@dg.asset(group_name=RETRIEVAL, kinds={"pytorch", "parquet"})
def product_embeddings(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    text_model: TextModelResource,
    storage: StorageResource,
) -> pl.DataFrame:
    """Title embeddings (all-MiniLM-L6-v2 by default) per offer, reusing last run's unchanged rows."""
    timings: dict[str, float] = {}
    encoder = text_model.encoder()
    previous = storage.store.read_if_exists("product_embeddings")
    with timed(timings, "embed_s"):
        run = embed_products(catalog, encoder, previous)
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
