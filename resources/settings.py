"""Tunable knobs of the ranking stages, in one place so a run's config shows them all. Defaults come from
the domain's own configs (``RuleConfig``), so a default is written once."""

from dataclasses import fields

import dagster as dg

from seestocks_rank.rules.page_rules import RuleConfig

_RULES = RuleConfig()


class RankingSettings(dg.ConfigurableResource):
    # retrieval
    candidate_multiplier: float = 4.0  # candidates per page = page_size x this (SeeStocks: 3-5x)
    index_kind: str = "flat"
    centroid_trim: float = 0.25
    centroid_prompt_weight: float = 0.35
    # reranking
    out_of_category_filter: bool = True  # flag pairs the catalog's own tags disagree with (status out_of_category)
    cross_encoder_minutes: float = 1.5
    cross_encoder_epochs: float = 2.0
    seed: int = 0
    # feed checks (blocking: a broken feed stops the run before any page is ranked)
    max_quarantined_share: float = 0.2  # of the catalog's rows
    min_catalog_ratio: float = 0.5  # products / the last accepted catalog's: a truncated feed
    max_catalog_ratio: float = 2.0  # ... and a duplicated one
    min_products_per_page: int = 5  # fewer tagged products: the page is listed by a (warning) check
    # publication
    history_days: float = 30.0  # ranking_history and page_health keep this many days of publications
    # business rules (RuleConfig)
    page_size: int = _RULES.page_size
    min_confidence: float = _RULES.min_confidence
    dedup_min_cosine: float = _RULES.dedup_min_cosine
    dedup_max_price_ratio: float = _RULES.dedup_max_price_ratio
    freshness_grace_days: float = _RULES.freshness_grace_days
    freshness_half_life_days: float = _RULES.freshness_half_life_days
    diversity_top_n: int = _RULES.diversity_top_n
    diversity_max_per_retailer: int = _RULES.diversity_max_per_retailer

    @property
    def candidates_per_page(self) -> int:
        return max(self.page_size, round(self.page_size * self.candidate_multiplier))

    def rule_config(self) -> RuleConfig:
        return RuleConfig(**{f.name: getattr(self, f.name) for f in fields(RuleConfig)})
