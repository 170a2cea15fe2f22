"""What analysts read: the tables of the DuckDB file, assembled from the stage tables in one pass.

Every table is materialised in the file (no view names a Parquet file), so the file is self-contained: it
can be copied, and the pipeline's later writes and clean-ups never change what an open connection sees.
Only pages that have a ranking are published as active; an active page without one is returned apart
(:attr:`AnalystTables.unranked`), for the caller to tell a page still waiting for its first run from a
failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from seestocks_rank.evaluation.baselines import naive_rankings
from seestocks_rank.inputs.taxonomy import Taxonomy
from seestocks_rank.publication.history import page_health
from seestocks_rank.reranking.signals import FEATURE_COLUMNS
from seestocks_rank.retrieval.centroids import ancestor_pairs
from seestocks_rank.rules.page_rules import SHOWN
from seestocks_rank.store.tables import TableStore

INPUT_TABLES = (
    "taxonomy",
    "catalog",
    "quarantine",
    "judgments",
    "fusion_model",
    "offer_matcher_model",
    "offer_matches",
    "predicted_categories",
)
PAGE_TABLES = ("candidate_sets", "cross_encoder_features", "fused_scores", "filtered_rankings")
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
    *(f"contribution_{c}" for c in FEATURE_COLUMNS),
    "contribution_bias",
    "model_version",
    "run_id",
    "offer_id",
)
HEALTH_INPUT = {"category_id": pl.Int64, "category_path": pl.String, "status": pl.String, "rank": pl.Int32,
                "retailer": pl.String, "price": pl.Float64, "confidence": pl.Float64}  # fmt: skip
EXCLUSION_COLUMNS = (
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
    "run_id",
)


@dataclass(frozen=True)
class AnalystTables:
    """The tables to publish, each published page's health, and the active pages left out because they
    have no ranking yet."""

    tables: dict[str, pl.DataFrame]
    health: pl.DataFrame
    unranked: pl.DataFrame  # category_pages rows


INTERNAL_COLUMNS = {  # bookkeeping, not for analysts
    "predicted_categories": ("content_hash", "basis"),
    "offer_matches": ("key_a", "key_b"),
}


def analyst_tables(
    store: TableStore, embeddings_manifest: pl.DataFrame, page_size: int, min_confidence: float
) -> AnalystTables:
    """Read the stage tables once and assemble the analysts' tables: ``rankings`` (shown products per
    published page, with every signal), ``page_exclusions`` (what the rules kept off a page, and why),
    ``naive_rankings``, ``category_pages`` (published pages), each per-page stage's table and the inputs."""
    pages = store.read("category_pages")
    ranked_pages = set(store.partition_index("filtered_rankings").get_column("partition").to_list())
    has_ranking = pl.col("category_id").cast(pl.String).is_in(list(ranked_pages))
    published, unranked = pages.filter(has_ranking), pages.filter(~has_ranking)
    keys = [str(c) for c in published.get_column("category_id").to_list()]
    tables = {name: store.read(name).drop(INTERNAL_COLUMNS.get(name, ()), strict=False) for name in INPUT_TABLES}
    tree = Taxonomy.from_nodes(tables["taxonomy"])
    tables |= {
        "category_pages": published,
        "naive_rankings": naive_rankings(
            tables["catalog"].select("offer_id", "product_id", "title", "retailer", "price", "category_id"),
            published,
            tree,
            page_size,
        ),
        "taxonomy_closure": ancestor_pairs(tree),
        "taxonomy_centroids": store.read("taxonomy_centroids")
        .drop("centroid", "prompt_embedding", "visual_prototype", strict=False)
        .filter(pl.col("category_id").is_in(published.get_column("category_id").implode())),
        "product_embeddings": embeddings_manifest.drop("chunk", "row"),  # where a vector is stored: internal
    }
    health = page_health(pl.DataFrame(schema=HEALTH_INPUT), page_size, min_confidence)
    if keys:  # nothing ranked yet: no page tables
        tables |= {name: store.read_partitions(name, keys) for name in PAGE_TABLES}
        ranked = tables["filtered_rankings"].join(
            published.select("category_id", pl.col("path").alias("category_path")), on="category_id"
        )
        shown = ranked.filter(pl.col("status") == SHOWN).sort("category_id", "rank")
        tables["rankings"] = shown.select(c for c in RANKING_COLUMNS if c in shown.columns)
        tables["page_exclusions"] = ranked.filter(pl.col("status") != SHOWN).select(EXCLUSION_COLUMNS)
        health = page_health(ranked, page_size, min_confidence)
    return AnalystTables(tables, health, unranked)
