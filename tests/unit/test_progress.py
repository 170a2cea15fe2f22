"""Progress lines: count, rate and time left in the log; silence for calls shorter than the interval."""

import logging

import pytest

from seestocks_rank.progress import Progress


def test_each_line_says_how_far_how_fast_and_how_long_is_left(caplog: pytest.LogCaptureFixture):
    progress = Progress("encoding products", 1000, "products", every_s=0)
    with caplog.at_level(logging.INFO, "seestocks_rank"), progress:
        progress.update(250)
    assert caplog.messages[0].startswith("encoding products: 250/1,000 products (25%), ")
    assert "/s, " in caplog.messages[0] and " left, " in caplog.messages[0]
    assert caplog.messages == [caplog.messages[0]]  # the closing line would repeat it: not logged


def test_the_closing_line_says_where_it_ended(caplog: pytest.LogCaptureFixture):
    progress = Progress("encoding products", 1000, "products", every_s=0)
    with caplog.at_level(logging.INFO, "seestocks_rank"), progress:
        progress.update(250)
        progress.every_s = 3600
        progress.update(750)
    assert [m.split(" (")[0] for m in caplog.messages] == [
        "encoding products: 250/1,000 products",
        "encoding products: 1,000/1,000 products",
    ]


def test_a_short_call_says_nothing(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, "seestocks_rank"), Progress("scoring", 10, "pairs", every_s=60) as p:
        p.update(10)
    assert caplog.messages == []
