"""Input assets: taxonomy, catalog (+ quarantine), category pages and relevance judgments."""

import dagster as dg
import polars as pl

from assets._metadata import preview
from assets.partitions import CATEGORY_PAGES, page_ids
from resources import InputsResource, RankingSettings, StorageResource
from seestocks_rank.inputs.catalog import load_catalog
from seestocks_rank.inputs.judgments import load_judgments
from seestocks_rank.inputs.pages import load_category_pages
from seestocks_rank.inputs.taxonomy import Taxonomy

FEED_CHECKS = ("quarantined_share_within_bounds", "product_count_within_bounds_of_last_run")
ACCEPTED_CATALOG = "catalog_accepted"  # the size of the last catalog that passed the feed checks


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
    check_specs=[dg.AssetCheckSpec(name, asset="catalog", blocking=True) for name in FEED_CHECKS],
)
def catalog(
    context: dg.AssetExecutionContext,
    inputs: InputsResource,
    storage: StorageResource,
    settings: RankingSettings,
    taxonomy: pl.DataFrame,
):
    """Load and validate the catalog; bad rows go to ``quarantine`` and the run goes on. Two blocking checks
    stop a broken feed before it reaches a page: the quarantined share of the rows, and the number of
    products against the last accepted catalog's (a truncated or duplicated feed)."""
    loaded = load_catalog(inputs.catalog_path, taxonomy.get_column("category_id").to_numpy())
    counts = loaded.counts
    context.log.info(f"catalog: {counts}")
    accepted = storage.tables.read_if_exists(ACCEPTED_CATALOG)  # the last catalog that passed these checks
    previous = int(accepted.get_column("products")[0]) if accepted is not None else None
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
    share = counts["quarantined"] / max(counts["rows"], 1)
    yield dg.AssetCheckResult(
        check_name=FEED_CHECKS[0],
        asset_key="catalog",
        passed=share <= settings.max_quarantined_share,
        metadata={"quarantined_share": round(share, 4), "max": settings.max_quarantined_share},
    )
    ratio = loaded.products.height / previous if previous else None
    low, high = settings.min_catalog_ratio, settings.max_catalog_ratio
    size_ok = loaded.products.height > 0 and (ratio is None or low <= ratio <= high)
    if size_ok and share <= settings.max_quarantined_share:
        storage.tables.write(ACCEPTED_CATALOG, pl.DataFrame({"products": [loaded.products.height]}))
    yield dg.AssetCheckResult(
        check_name=FEED_CHECKS[1],
        asset_key="catalog",
        passed=size_ok,
        metadata={
            "products": loaded.products.height,
            "previous_products": previous or 0,
            "ratio": round(ratio, 4) if ratio else 0.0,
            "bounds": f"{low} - {high}",
        },  # fmt: skip
    )


@dg.asset(kinds={"polars", "parquet"})
def category_pages(context: dg.AssetExecutionContext, inputs: InputsResource, taxonomy: pl.DataFrame) -> pl.DataFrame:
    """The active category pages (``category_id, path, depth``) and each page's partition key
    (``page_key``: null until the ``category_pages_sensor`` registers it). The sensor, not this asset,
    adds and retires the partitions."""
    pages = load_category_pages(inputs.category_pages_path, Taxonomy.from_nodes(taxonomy))
    keys = context.instance.get_dynamic_partitions(CATEGORY_PAGES)
    schema = {"category_id": pl.Int64, "page_key": pl.String}
    key_of = pl.DataFrame({"category_id": page_ids(keys), "page_key": keys}, schema=schema)
    pages = pages.join(key_of, on="category_id", how="left", maintain_order="left")
    context.add_output_metadata(
        {
            "pages": pages.height,
            "without_partition": pages.get_column("page_key").null_count(),
            "preview": preview(pages, 10),
        }
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
