"""Tunable knobs of the ranking stages, in one place so a run's config shows them all."""

import dagster as dg

from seestocks_rank.rules.page_rules import RuleConfig


class RankingSettings(dg.ConfigurableResource):
    page_size: int = 50
    candidate_multiplier: float = 4.0
    index_kind: str = "flat"
    centroid_trim: float = 0.25
    centroid_prompt_weight: float = 0.35
    min_confidence: float = 0.35
    dedup_min_cosine: float = 0.9
    freshness_half_life_days: float = 14.0
    diversity_top_n: int = 10
    diversity_max_per_retailer: int = 3
    out_of_category_filter: bool = True  # flag pairs the catalog's own tags disagree with (status out_of_category)
    cross_encoder_minutes: float = 1.5
    cross_encoder_epochs: float = 2.0
    seed: int = 0

    @property
    def candidates_per_page(self) -> int:
        return max(self.page_size, round(self.page_size * self.candidate_multiplier))

    def rule_config(self) -> RuleConfig:
        return RuleConfig(
            page_size=self.page_size,
            min_confidence=self.min_confidence,
            dedup_min_cosine=self.dedup_min_cosine,
            freshness_half_life_days=self.freshness_half_life_days,
            diversity_top_n=self.diversity_top_n,
            diversity_max_per_retailer=self.diversity_max_per_retailer,
        )
