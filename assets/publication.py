"""The analysts' DuckDB file: the one writer, run after the stages it publishes."""

import dagster as dg
import polars as pl

from resources import RankingSettings, StorageResource
from seestocks_rank.evaluation.baselines import naive_rankings
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.retrieval.centroids import ancestor_pairs
from seestocks_rank.rules.page_rules import SHOWN
from seestocks_rank.store.embedding_store import MANIFEST
from seestocks_rank.store.publication import publish_duckdb
from seestocks_rank.store.tables import PARTITION_INDEX, TableStore

PUBLISHED_TABLES = (
    "taxonomy",
    "catalog",
    "quarantine",
    "category_pages",
    "judgments",
    "fusion_model",
    "predicted_categories",
)


PARTITIONED_VIEWS = ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")


def partitioned_view(store: TableStore, name: str) -> str:
    """SQL over a partitioned table's batch files, keeping each page's rows from the file its index names."""
    files = ", ".join(f"'{f}'" for f in store.partition_files(name))
    index = store.partitions_dir(name) / PARTITION_INDEX
    return (
        f"SELECT t.* EXCLUDE (filename) FROM read_parquet([{files}], filename = true, union_by_name = true) t "
        f"JOIN read_parquet('{index}') i ON i.file = parse_filename(t.filename) "
        "AND i.partition = CAST(t.category_id AS VARCHAR)"
    )


RANKING_COLUMNS = (
    "category_id",
    "category_path",
    "rank",
    "product_id",
    "title",
    "retailer",
    "price",
    "currency",
    "final_score",
    "confidence",
    "score",
    "freshness",
    "retrieval_score",
    *FEATURE_COLUMNS,
    "model_version",
    "offer_id",
)


@dg.asset(
    kinds={"duckdb"},
    deps=[
        "filtered_rankings",
        "fused_scores",
        "cross_encoder_features",
        "candidate_sets",
        "product_embeddings",
        "taxonomy_centroids",
        *PUBLISHED_TABLES,
    ],
    check_specs=[dg.AssetCheckSpec("every_active_page_ranked", asset="analyst_database")],
)
def analyst_database(context: dg.AssetExecutionContext, storage: StorageResource, settings: RankingSettings):
    """Rebuild ``<data root>/seestocks.duckdb``: ``rankings`` (shown products per active page, with
    the signals), ``page_exclusions`` (what the rules kept off a page, and why), ``naive_rankings``,
    the input tables, and views over every stage's Parquet files."""
    store = storage.tables
    tables = {name: store.read(name) for name in PUBLISHED_TABLES}
    pages = tables["category_pages"]
    active = pl.col("category_id").is_in(pages.get_column("category_id").implode())
    ranked = (
        store.read_partitions("filtered_rankings")
        .filter(active)
        .join(pages.select("category_id", pl.col("path").alias("category_path")), on="category_id")
    )
    shown = ranked.filter(pl.col("status") == SHOWN).sort("category_id", "rank")
    tree = Taxonomy.from_nodes(tables["taxonomy"])
    tables["rankings"] = shown.select(c for c in RANKING_COLUMNS if c in shown.columns)
    tables["page_exclusions"] = ranked.filter(pl.col("status") != SHOWN).select(
        "category_id",
        "category_path",
        "offer_id",
        "product_id",
        "title",
        "retailer",
        "price",
        "status",
        "reason",
        "duplicate_of",
        "confidence",
        "freshness",
        "final_score",
    )
    tables["naive_rankings"] = naive_rankings(
        tables["catalog"].select("offer_id", "product_id", "title", "retailer", "price", "category_id"),
        pages,
        tree,
        settings.page_size,
    )
    tables["taxonomy_closure"] = ancestor_pairs(tree)
    tables["taxonomy_centroids"] = store.read("taxonomy_centroids").drop("centroid", "prompt_embedding")
    views = {name: partitioned_view(store, name) for name in PARTITIONED_VIEWS if store.partition_files(name)}
    views["product_embeddings"] = f"SELECT * FROM read_parquet('{storage.root.embeddings / MANIFEST}')"
    counts = publish_duckdb(storage.root.duckdb, tables, views)
    ranked_pages = set(shown.get_column("category_id").unique().to_list())
    unranked = [c for c in pages.get_column("category_id").to_list() if c not in ranked_pages]
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(storage.root.duckdb)),
            "tables": dg.MetadataValue.json(counts),
            "views": sorted(views),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="every_active_page_ranked",
                passed=not unranked,
                metadata={
                    "pages": pages.height,
                    "pages_without_ranking": dg.MetadataValue.json(unranked[:50]),
                },
            )
        ],
    )
