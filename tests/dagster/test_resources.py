"""Resources: settings defaults come from the domain configs."""

from resources import RankingSettings
from seestocks_rank.rules.page_rules import RuleConfig


def test_ranking_settings_default_to_the_rule_config_and_carry_every_rule_knob():
    assert RankingSettings().rule_config() == RuleConfig()
    assert RankingSettings(min_confidence=0.5, page_size=20).rule_config() == RuleConfig(
        min_confidence=0.5, page_size=20
    )
