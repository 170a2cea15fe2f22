"""The analysts' file, documented: a comment on every table and column (``COMMENT ON``, shown by
``duckdb_tables()`` / ``duckdb_columns()``), ``status`` as an ENUM, JSON columns typed JSON, and the views
that answer the common questions in one query."""

from __future__ import annotations

import re

STATUSES = ("shown", "duplicate", "out_of_category", "low_confidence", "overflow")
JSON_COLUMNS = {
    "runs": ("model_versions", "input_fingerprints", "row_counts"),
    "fusion_model": ("metrics", "details"),
    "offer_matcher_model": ("metrics", "details"),
    "run_failures": ("steps", "partition_range"),
}
ENUM_COLUMNS = {"filtered_rankings": ("status",), "page_exclusions": ("status",)}

SIGNALS = {
    "centroid_cosine": "cosine of the product's vector and the page centroid (the ideal product)",
    "centroid_cosine_z": "centroid_cosine as a robust z-score against the page's own products",
    "prompt_cosine": "cosine of the product's vector and the page prompt (leaf name and path)",
    "name_match": "share of the page name's words present in the title",
    "taxonomy_distance": "tree distance from the product's assigned category to the page",
    "predicted_distance": "tree distance from the product's predicted category (tree walk) to the page",
    "assigned_within_page": "1 when the assigned category is the page or below it",
    "price_z": "log-price robust z-score against the page's core products",
    "price_abs_z": "absolute price_z",
    "visual_similarity": "cosine of the product image and the page's visual prototype (null without images)",
    "cross_encoder_score": "the fine-tuned cross-encoder's reading of page path and title together",
}
COLUMNS = {
    **SIGNALS,
    "category_id": "the page's (or the product's) category id in the taxonomy",
    "category_path": "the page's path in the taxonomy, A > B > C",
    "page_key": "the page's partition key in Dagster: category id and a slug of its name",
    "path": "the category's path in the taxonomy, A > B > C",
    "name": "the category's name (the last element of its path)",
    "parent_id": "the parent category's id (null for a root)",
    "depth": "the category's depth, 1 for a root",
    "ancestor_id": "an ancestor of category_id, or category_id itself",
    "offer_id": "one retailer's offer of a product: retailer|product_id",
    "product_id": "the retailer's product id",
    "title": "the offer's title as the retailer wrote it (whitespace collapsed)",
    "retailer": "the retailer selling the offer",
    "price": "the offer's price",
    "currency": "the price's currency",
    "image_path": "the product image's path (null: none, or unusable)",
    "image_stamp": "the image file's size and modification time when embedded (a replaced file is embedded again)",
    "last_seen": "when a crawl last saw the offer",
    "description": "the offer's description",
    "brand": "the offer's brand",
    "rank": "the position on the page, 1 first (null when not shown)",
    "final_score": "confidence x freshness: what orders the page",
    "confidence": "calibrated probability that the product belongs on the page (0-1)",
    "score": "the fusion model's raw ranking score (the contributions add up to it)",
    "freshness": "decay for offers not seen in recent crawls (1: seen recently)",
    "retrieval_rank": "the product's rank among the page centroid's nearest neighbours",
    "retrieval_score": "cosine to the page centroid in the retrieval index",
    "model_version": "the version of the fusion model that scored the row",
    "run_id": "the Dagster run that produced the row",
    "status": "shown, or why not: duplicate, out_of_category, low_confidence, overflow (beyond the page size)",
    "reason": "why the product is not shown, with the figures",
    "duplicate_of": "the cheaper offer of the same product shown instead",
    "out_of_category": "true when the out-of-category filter keeps the product off the page",
    "out_of_category_reason": "the signal that disagreed (title, visual or price) and its figures",
    "centroid_margin": "cosine to this page's centroid minus the best unrelated page's",
    "predicted_category_id": "the category the tree walk predicts from the title",
    "predicted_within": "true when the predicted category is the page or below it",
    "neighbour_vote": "share of the most similar titles tagged within the page",
    "visual_vote": "share of the most similar images tagged within the page",
    "predicted_score": "the tree walk's score of its prediction",
    "disambiguated": "true when the sibling layer changed the tree walk's call",
    "grade": "the human relevance grade (any numeric scale)",
    "source_row": "the row's position in the input file (0 first)",
    "kept_without_image": "true when only the image was unusable: the product is in the catalog without it",
    "version": "the model's version",
    "trained_at": "when the model was trained",
    "metrics": "the training's figures",
    "details": "what else describes the model (features, importances, architecture)",
    "n_members": "products tagged to the page or below it",
    "n_core": "members kept after trimming those least like the centroid",
    "member_cos_median": "median cosine of the members to the centroid",
    "member_cos_mad": "median absolute deviation of that cosine",
    "log_price_median": "median log-price of the core members",
    "log_price_mad": "median absolute deviation of the core members' log-price",
    "has_image": "true when the offer has an image vector",
    "image_error": "why the image could not be used",
    "published_at": "when this publication was swapped in",
    "trigger": "what launched the run: nightly, backfill, command line, automation",
    "started_at": "when the run started",
    "code_version": "the pipeline's version (package version and commit)",
    "model_versions": "the versions of the models the run served (JSON)",
    "input_fingerprints": "sha256 prefixes of the input files the run read (JSON)",
    "row_counts": "rows read, quarantined, pages published, candidates, shown (JSON)",
    "candidates_retrieved": "candidates the page retrieved",
    "removed_duplicate": "candidates removed as a second offer of a shown product",
    "removed_out_of_category": "candidates the out-of-category filter kept off",
    "removed_stale": "candidates confident enough but not seen for so long that freshness took them below the cut",
    "removed_low_confidence": "candidates below the minimum confidence",
    "beyond_page_size": "candidates that passed but did not fit the page",
    "shown": "products shown",
    "page_size": "products a page shows at most",
    "page_filled_share": "shown / page_size",
    "top10_max_retailer_share": "the largest retailer's share of the top 10",
    "median_price_shown": "median price of the shown products",
    "median_confidence_shown": "median confidence of the shown products",
    "job": "the Dagster job of the failed run",
    "failed_at": "when the failure was recorded",
    "message": "Dagster's message for the failure",
    "steps": "each failed step and its error (JSON)",
    "partition_range": "the first and last page of the run (JSON)",
    "signal": "a signal the fusion model reads (bias: its base score)",
    "offer_a": "one offer of a candidate duplicate pair",
    "offer_b": "the other offer of the pair (another retailer's)",
    "matcher_version": "the offer matcher that scored the pair (rule: the strict duplicate test)",
    "probability": "the matcher's probability that both offers are the same product",
    "cosine": "cosine of the two offers' vectors",
    "linked": "the pair is merged on a page: probability at or above the threshold, and no retailer twice in its group",
    "contribution": "the signal's contribution to the product's score (TreeSHAP); they add up to score",
    "change": "entered or left the page's top 10 since the previous publication",
    "rank_now": "the product's rank in the latest publication (null: not shown)",
    "rank_before": "the product's rank in the previous publication (null: not shown)",
    "why": "the reason, in words",
}
TABLES = {
    "rankings": "What each published page shows, in order: every signal, each signal's contribution to the score, "
    "the model version and the run.",
    "page_exclusions": "The candidates the rules kept off each page, and why.",
    "naive_rankings": "The baseline page: products tagged to the page or below it, cheapest first.",
    "category_pages": "The published pages (active pages that have a ranking).",
    "catalog": "The validated offers.",
    "quarantine": "The catalog rows rejected on load (or kept without their image), with their original text.",
    "taxonomy": "The category tree.",
    "taxonomy_closure": "Every (category, ancestor) pair, the category itself included.",
    "taxonomy_centroids": "Each published page's centroid statistics.",
    "judgments": "The human relevance judgments the fusion model trains on.",
    "fusion_model": "The fusion model the run served (registry row).",
    "offer_matcher_model": "The offer matcher the run's dedup served (registry row; none: the strict duplicate test).",
    "offer_matches": "Candidate duplicate offer pairs (other retailers, near in the embedding index), their match "
    "probability, and whether the rules merge them.",
    "predicted_categories": "The tree walk's category per offer.",
    "product_embeddings": "Per offer, the content its vectors were computed from.",
    "candidate_sets": "The retrieval stage: each page's nearest products.",
    "cross_encoder_features": "The signals stage: every signal per (page, candidate), and the out-of-category verdict.",
    "fused_scores": "The fusion stage: score, confidence and contributions per (page, candidate).",
    "filtered_rankings": "The rules stage: every candidate with its status, reason and rank.",
    "runs": "Every run that published this file: when, on which inputs and models, with what counts.",
    "ranking_history": "A snapshot of every published ranking, one per publication, kept for history_days.",
    "page_health": "Each page's health per publication: what was retrieved, removed and why, how full, how diverse.",
    "run_failures": "The failed runs the daemon recorded.",
}
VIEWS = {
    "ranking_explanations": (
        "Why a product ranks where it does: one row per (page, shown product, signal), largest contribution first.",
        """SELECT category_id, category_path, rank, title, retailer, final_score, confidence,
       replace(signal, 'contribution_', '') AS signal, contribution
FROM (UNPIVOT (SELECT category_id, category_path, rank, title, retailer, final_score, confidence,
                      COLUMNS('^contribution_') FROM rankings)
      ON COLUMNS('^contribution_') INTO NAME signal VALUE contribution)
ORDER BY category_id, rank, abs(contribution) DESC""",
    ),
    "rank_churn": (
        "What changed since the previous publication: per page, the top-10 products that entered and those that "
        "left, with why they left (the rule that kept them off, their new rank, or no longer a candidate).",
        """WITH snapshots AS (
  SELECT DISTINCT run_id, published_at FROM ranking_history),
latest AS (SELECT run_id FROM snapshots ORDER BY published_at DESC LIMIT 1),
previous AS (SELECT run_id FROM snapshots ORDER BY published_at DESC LIMIT 1 OFFSET 1),
now_top AS (SELECT * FROM ranking_history WHERE run_id = (SELECT run_id FROM latest) AND rank <= 10),
before_top AS (SELECT * FROM ranking_history WHERE run_id = (SELECT run_id FROM previous) AND rank <= 10)
SELECT n.category_id, n.category_path, 'entered' AS change, n.offer_id, n.title, n.retailer, n.rank AS rank_now,
       b_any.rank AS rank_before, NULL AS why
FROM now_top n
LEFT JOIN before_top b ON b.category_id = n.category_id AND b.offer_id = n.offer_id
LEFT JOIN (SELECT * FROM ranking_history WHERE run_id = (SELECT run_id FROM previous)) b_any
       ON b_any.category_id = n.category_id AND b_any.offer_id = n.offer_id
WHERE b.offer_id IS NULL
UNION ALL
SELECT b.category_id, b.category_path, 'left', b.offer_id, b.title, b.retailer, r.rank, b.rank,
       CASE WHEN r.rank IS NOT NULL THEN 'ranked lower now'
            WHEN e.status IS NOT NULL THEN CAST(e.status AS VARCHAR) || ': ' || coalesce(e.reason, '')
            ELSE 'no longer a candidate' END
FROM before_top b
LEFT JOIN now_top n ON n.category_id = b.category_id AND n.offer_id = b.offer_id
LEFT JOIN rankings r ON r.category_id = b.category_id AND r.offer_id = b.offer_id
LEFT JOIN page_exclusions e ON e.category_id = b.category_id AND e.offer_id = b.offer_id
WHERE n.offer_id IS NULL AND b.category_id IN (SELECT category_id FROM category_pages)
ORDER BY 1, 3, 7""",
    ),
    "pages_needing_a_look": (
        "The published pages that need a person's look, and why, from the latest page_health.",
        """SELECT category_id, category_path, shown, page_size, top10_max_retailer_share, removed_out_of_category,
       candidates_retrieved,
       concat_ws('; ',
         CASE WHEN page_filled_share < 0.5 THEN 'half empty: ' || shown || ' of ' || page_size END,
         CASE WHEN top10_max_retailer_share > 0.5 THEN 'one retailer holds '
              || round(100 * top10_max_retailer_share) || '% of the top 10' END,
         CASE WHEN removed_out_of_category > 0.8 * candidates_retrieved THEN 'retrieval mostly off the page: '
              || removed_out_of_category || ' of ' || candidates_retrieved || ' candidates out of category' END,
         CASE WHEN removed_stale > 0.3 * candidates_retrieved THEN removed_stale || ' candidates stale' END
       ) AS why
FROM page_health
WHERE run_id = (SELECT run_id FROM runs ORDER BY published_at DESC LIMIT 1)
  AND (page_filled_share < 0.5 OR top10_max_retailer_share > 0.5
       OR removed_out_of_category > 0.8 * candidates_retrieved OR removed_stale > 0.3 * candidates_retrieved)
ORDER BY page_filled_share, top10_max_retailer_share DESC""",
    ),
}
_PATTERNS = ((re.compile(r"^contribution_bias$"), "the model's base score, before any signal"),
             (re.compile(r"^contribution_(.+)$"),
              "{0}'s contribution to the score (TreeSHAP; a linear blend: weight x page z-score)"))  # fmt: skip


def column_comment(column: str) -> str | None:
    """The documentation of a column of the analysts' file (None: undocumented)."""
    if column in COLUMNS:
        return COLUMNS[column]
    for pattern, text in _PATTERNS:
        match = pattern.match(column)
        if match:
            return text.format(*match.groups())
    return None
