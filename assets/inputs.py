"""Input assets: taxonomy, catalog (+ quarantine), category pages and relevance judgments."""

import dagster as dg
import polars as pl

from assets._metadata import preview
from assets.partitions import CATEGORY_PAGES
from resources import InputsResource
from seestocks_rank.inputs.catalog import load_catalog
from seestocks_rank.inputs.judgments import load_judgments
from seestocks_rank.inputs.pages import load_category_pages
from seestocks_rank.inputs.taxonomy import Taxonomy


@dg.asset(kinds={"polars", "parquet"})
def taxonomy(context: dg.AssetExecutionContext, inputs: InputsResource) -> pl.DataFrame:
    """Google product taxonomy as a tree table (id, name, path, parent, depth)."""
    tree = Taxonomy.load(inputs.taxonomy_path)
    nodes = tree.nodes
    context.add_output_metadata(
        {
            "categories": len(tree),
            "roots": nodes.filter(pl.col("parent_id").is_null()).height,
            "max_depth": int(nodes.get_column("depth").max()),
            "source": str(inputs.taxonomy_path),
        }
    )
    return nodes


@dg.multi_asset(
    outs={
        "catalog": dg.AssetOut(kinds={"polars", "parquet"}, description="Validated products (one row per offer)."),
        "quarantine": dg.AssetOut(
            kinds={"polars", "parquet"}, description="Catalog rows rejected on load, with the reason."
        ),
    },
    ins={"taxonomy": dg.AssetIn()},
)
def catalog(context: dg.AssetExecutionContext, inputs: InputsResource, taxonomy: pl.DataFrame):
    """Load and validate the catalog; bad rows go to ``quarantine`` and the run goes on."""
    loaded = load_catalog(inputs.catalog_path, taxonomy.get_column("category_id").to_numpy())
    counts = loaded.counts
    context.log.info(f"catalog: {counts}")
    yield dg.Output(
        loaded.products,
        output_name="catalog",
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            "retailers": loaded.products.get_column("retailer").n_unique(),
            "source": str(inputs.catalog_path),
            "preview": preview(loaded.products, 5, ["product_id", "title", "retailer", "price", "category_id"]),
        },
    )
    yield dg.Output(
        loaded.quarantine,
        output_name="quarantine",
        metadata={
            "rows": loaded.quarantine.height,
            "by_reason": dg.MetadataValue.json({k: v for k, v in counts.items() if k.startswith("quarantined.")}),
            "preview": preview(loaded.quarantine, 10, ["source_row", "reason", "product_id", "title", "price"]),
        },
    )


@dg.asset(kinds={"polars", "parquet"})
def category_pages(context: dg.AssetExecutionContext, inputs: InputsResource, taxonomy: pl.DataFrame) -> pl.DataFrame:
    """The active category pages; registers them as the ``category_pages`` dynamic partitions and
    retires partitions whose page is gone (their old outputs stay on disk, unpublished)."""
    pages = load_category_pages(inputs.category_pages_path, Taxonomy.from_nodes(taxonomy))
    wanted = [str(c) for c in pages.get_column("category_id").to_list()]
    existing = set(context.instance.get_dynamic_partitions(CATEGORY_PAGES))
    added = [k for k in wanted if k not in existing]
    removed = sorted(existing - set(wanted))
    if added:
        context.instance.add_dynamic_partitions(CATEGORY_PAGES, added)
    for key in removed:
        context.instance.delete_dynamic_partition(CATEGORY_PAGES, key)
    context.add_output_metadata(
        {"pages": pages.height, "added": len(added), "removed": len(removed), "preview": preview(pages, 10)}
    )
    return pages


@dg.asset(kinds={"polars", "parquet"})
def judgments(context: dg.AssetExecutionContext, inputs: InputsResource) -> pl.DataFrame:
    """Human relevance judgments (category_id, product_id, grade) that train the fusion model."""
    table = load_judgments(inputs.judgments_path)
    context.add_output_metadata(
        {
            "judgments": table.height,
            "pages_judged": table.get_column("category_id").n_unique(),
            "grades": dg.MetadataValue.json(
                {str(k): v for k, v in table.group_by("grade").len().sort("grade").iter_rows()}
            ),
        }
    )
    return table
