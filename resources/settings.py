"""Tunable knobs of the ranking stages, in one place so a run's config shows them all. Defaults come from
the domain's own configs (``RuleConfig``), so a default is written once."""

import json
import os
from dataclasses import fields
from typing import TypeVar

import dagster as dg
import pydantic

from seestocks_rank.rules import offer_matching
from seestocks_rank.rules.page_rules import RuleConfig

_RULES = RuleConfig()
R = TypeVar("R", bound=dg.ConfigurableResource)


class RankingSettings(dg.ConfigurableResource):
    # retrieval
    candidate_multiplier: float = 4.0  # candidates per page = page_size x this (SeeStocks: 3-5x)
    index_kind: str = "flat"
    # retrieval can only add: a page's candidates also hold its tagged products (its category and below) the
    # search missed, up to candidates_per_page of them (those nearest the centroid); false: the search alone
    tagged_candidates: bool = True
    centroid_trim: float = 0.25
    centroid_prompt_weight: float = 0.35
    # reranking
    out_of_category_filter: bool = True  # flag pairs the catalog's own tags disagree with (status out_of_category)
    cross_encoder_minutes: float = 1.5
    cross_encoder_epochs: float = 2.0
    # fold models (grouped by page) score the judged pairs the fusion trains on, so it never reads in-sample
    # cross-encoder scores; they take half of cross_encoder_minutes, the served refit on all pairs the other half
    cross_encoder_folds: int = 3
    seed: int = 0
    # feed checks (blocking: a broken feed stops the run before any page is ranked)
    max_quarantined_share: float = 0.2  # of the catalog's rows
    min_catalog_ratio: float = 0.5  # products / the last accepted catalog's: a truncated feed
    max_catalog_ratio: float = 2.0  # ... and a duplicated one
    min_products_per_page: int = 5  # fewer tagged products: the page is listed by a (warning) check
    # business rules: the learned offer matcher (trained on the matching pairs input, reused until they change)
    matcher_minutes: float = 3.0
    matcher_epochs: float = 2.0
    matcher_neighbours: int = offer_matching.NEIGHBOURS  # candidate pairs: nearest offers of other retailers ...
    matcher_min_cosine: float = offer_matching.MIN_COSINE  # ... at least this similar
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


SETTINGS_ENV = "SEESTOCKS_SETTINGS"  # JSON: RankingSettings fields to override, e.g. {"cross_encoder_minutes": 0}


def ranking_settings(**overrides: object) -> RankingSettings:
    """The settings: ``$SEESTOCKS_SETTINGS`` (JSON) over the defaults, then ``overrides`` (command-line
    options) over both. Raises ValueError naming the variable and the field when it is unusable."""
    return resource_from_env(RankingSettings, SETTINGS_ENV, **overrides)


def resource_from_env(cls: type[R], variable: str, **overrides: object) -> R:
    """``cls`` configured from ``$variable`` (a JSON object of its fields) over its defaults, then
    ``overrides`` over both; raises ValueError naming the variable and the field when it is unusable."""
    text = os.environ.get(variable) or "{}"
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{variable}={text}: not JSON ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{variable}={text}: not a JSON object of settings")
    unknown = sorted(set(values) - set(cls.model_fields))
    if unknown:
        raise ValueError(f"{variable}={text}: unknown setting(s) {unknown}")
    try:
        return cls(**{**values, **overrides})
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{variable}={text}: {field}: {first['msg']}") from error
