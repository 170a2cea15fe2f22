"""Stage 3: business rules and the final page order."""

import dagster as dg
import polars as pl

from assets._metadata import few_pages_only, preview, timed
from assets.partitions import category_pages_partitions, single_run
from resources import CatalogContextResource, OfferMatcherResource, RankingSettings, StorageResource
from seestocks_rank.rules.offer_matching import match_offers
from seestocks_rank.rules.page_rules import SHOWN, rank_pages
from seestocks_rank.store.embedding_store import EmbeddingStore
from seestocks_rank.store.tables import write_parquet_atomic


@dg.asset(kinds={"pytorch", "polars", "parquet"}, deps=["offer_matcher_model"])
def offer_matches(
    context: dg.AssetExecutionContext,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    taxonomy: pl.DataFrame,
    offer_matcher: OfferMatcherResource,
    settings: RankingSettings,
    storage: StorageResource,
    catalog_context: CatalogContextResource,
) -> pl.DataFrame:
    """The catalog's candidate duplicate pairs: each offer's nearest neighbours of other retailers in the
    embedding index, scored by the offer matcher (only pairs whose offers' text or the matcher changed
    since the last night are scored again) or, without one, by the strict duplicate test. ``linked``
    pairs are what the rules merge on a page."""
    products = catalog_context.for_run(context.run_id, catalog, product_embeddings, taxonomy)
    cache_path = storage.root.offer_pair_scores
    previous = pl.read_parquet(cache_path) if cache_path.exists() else None
    timings: dict[str, float] = {}
    with timed(timings, "matching_s"):
        pairs, counts = match_offers(
            products.products,
            products.vectors,
            offer_matcher.load(),
            previous,
            neighbours=settings.matcher_neighbours,
            min_cosine=settings.matcher_min_cosine,
            rule_min_cosine=settings.dedup_min_cosine,
            rule_max_price_ratio=settings.dedup_max_price_ratio,
        )
    write_parquet_atomic(pairs.drop("cosine", "linked"), cache_path)
    context.add_output_metadata({"dagster/row_count": pairs.height, **counts, **timings})
    return pairs


RANKING_CHECKS = ("no_duplicate_product_in_page", "ranks_contiguous", "final_scores_finite")


@dg.asset(
    partitions_def=category_pages_partitions,
    backfill_policy=single_run,
    kinds={"polars", "parquet"},
    check_specs=[dg.AssetCheckSpec(name, asset="filtered_rankings", blocking=True) for name in RANKING_CHECKS],
)
def filtered_rankings(
    context: dg.AssetExecutionContext,
    fused_scores: pl.DataFrame,
    offer_matches: pl.DataFrame,
    catalog: pl.DataFrame,
    product_embeddings: EmbeddingStore,
    taxonomy: pl.DataFrame,
    settings: RankingSettings,
    catalog_context: CatalogContextResource,
):
    """Dedup across retailers (offers of a page joined by a linked ``offer_matches`` pair; the cheapest
    kept), freshness decay, confidence cut, retailer diversity, final rank. Every candidate stays in the
    table with its ``status`` and ``reason``."""
    timings: dict[str, float] = {}
    scoring = catalog_context.for_run(context.run_id, catalog, product_embeddings, taxonomy)
    with timed(timings, "rules_s"):
        links = offer_matches.filter("linked").select("offer_a", "offer_b")
        ranked = rank_pages(fused_scores, scoring, settings.rule_config(), links).with_columns(
            pl.lit(context.run_id).alias("run_id")  # the run that ranked these pages (analysts' lineage)
        )
    shown = ranked.filter(pl.col("status") == SHOWN)
    status_counts = {k: v for k, v in ranked.group_by("status").len().sort("status").iter_rows()}
    yield dg.Output(
        ranked,
        metadata={
            "rows": ranked.height,
            "shown": shown.height,
            "status": dg.MetadataValue.json(status_counts),
            "reference_time": str(catalog.get_column("last_seen").max()),
            **timings,
            "rules_ms_per_page": round(1000 * timings["rules_s"] / max(len(context.partition_keys), 1), 3),
            **few_pages_only(
                context,
                top_of_first_page=preview(
                    shown, 10, ["category_id", "rank", "title", "retailer", "price", "final_score"]
                ),
            ),
        },
    )
    yield from ranking_check_results(shown)


def ranking_check_results(shown: pl.DataFrame):
    """The invariants of a ranked page, as check results for the pages in hand."""
    dupes = shown.group_by("category_id", "offer_id").len().filter(pl.col("len") > 1).height
    dupes += shown.group_by("category_id", "product_id", "retailer").len().filter(pl.col("len") > 1).height
    gaps = (
        shown.group_by("category_id")
        .agg(ok=(pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all())
        .filter(~pl.col("ok"))
        .height
    )
    non_finite = shown.filter(~pl.col("final_score").is_finite() | pl.col("final_score").is_null()).height
    yield dg.AssetCheckResult(check_name=RANKING_CHECKS[0], passed=dupes == 0, metadata={"duplicates": dupes})
    yield dg.AssetCheckResult(check_name=RANKING_CHECKS[1], passed=gaps == 0, metadata={"pages_with_gaps": gaps})
    yield dg.AssetCheckResult(check_name=RANKING_CHECKS[2], passed=non_finite == 0, metadata={"non_finite": non_finite})
