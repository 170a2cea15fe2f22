"""Hostile feeds, property-based: whatever a row holds, it ends in the catalog or in quarantine with a reason,
the counts add up, text is kept as text, and no file outside the catalog's folder (``/etc/passwd``) or that is
not a regular file (``/dev/zero``, a pipe) is ever opened."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from seestocks_rank.inputs.catalog import QUARANTINE_REASONS, REASON_SEPARATOR, load_catalog

KNOWN = [1, 2, 3]
FORBIDDEN = {os.path.realpath("/etc/passwd"), "/dev/zero", "/dev/random"}
_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it only appends to a list

prices = st.one_of(
    st.sampled_from(["9.99", "12,50 €", "1.234,56", "$3", "nan", "inf", "-inf", "-4", "0", "1e308", "2e9", "", " "]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
titles = st.one_of(
    st.sampled_from(["Canvas Tool Bag 18 in", "'); DROP TABLE rankings; --", "SELECT * FROM catalog", "", " "]),
    st.text(min_size=0, max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=40),
    st.just("x" * 100_000),  # a 100 KB title
    st.text(alphabet=st.sampled_from("\x00\x01\x07\x1b\t\r\n\u200b\u202e"), max_size=10),
)
categories = st.one_of(st.sampled_from(["1", "2", "3", "999999", "-1", "1.5", "abc", "", "2.0"]), st.text(max_size=6))
dates = st.one_of(
    st.sampled_from(["2026-11-01T03:00:00Z", "2026-11-01", "2026-13-45", "yesterday", "", "0000-00-00", "1e9"]),
    st.text(max_size=20),
)
IMAGE_KINDS = ("none", "ok", "broken", "outside", "passwd", "dev_zero", "pipe", "folder", "symlink_out", "missing")
rows = st.lists(
    st.fixed_dictionaries(
        {
            "product_id": st.one_of(st.sampled_from(["p1", "p2", "p3", "", " "]), st.text(max_size=8)),
            "title": titles,
            "retailer": st.sampled_from(["acme", "Shop & Co", "", "'; --"]),
            "price": prices,
            "currency": st.sampled_from(["EUR", "eur", "", "€"]),
            "category_id": categories,
            "last_seen": dates,
            "image": st.sampled_from(IMAGE_KINDS),
        }
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def feed_folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A catalog folder holding every kind of image path a hostile feed can name."""
    folder = tmp_path_factory.mktemp("feed")
    Image.new("RGB", (8, 8), "red").save(folder / "ok.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    os.mkfifo(folder / "pipe.jpg")  # opening it would block forever
    (folder / "folder.jpg").mkdir()
    (folder / "symlink_out.jpg").symlink_to("/etc/passwd")
    return {
        "root": str(folder),
        "none": "",
        "ok": "ok.png",
        "broken": "broken.jpg",
        "outside": "../../../etc/passwd",
        "passwd": "/etc/passwd",
        "dev_zero": "/dev/zero",
        "pipe": "pipe.jpg",
        "folder": "folder.jpg",
        "symlink_out": "symlink_out.jpg",
        "missing": "nowhere.jpg",
    }


def _timeout(_signum: int, _frame: object) -> None:
    raise TimeoutError("the load hung")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feed=rows)
def test_every_row_ends_in_the_catalog_or_in_quarantine(feed: list[dict], feed_folder: dict[str, str]):
    folder = Path(feed_folder["root"])
    table = pl.DataFrame(
        [{**{k: v for k, v in r.items() if k != "image"}, "image_path": feed_folder[r["image"]]} for r in feed],
        schema={c: pl.String for c in (*(k for k in feed[0] if k != "image"), "image_path")},
    )
    path = folder / "catalog.csv"
    table.write_csv(path)
    _opened.clear()
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)  # /dev/zero or a pipe must not hang a run
    try:
        loaded = load_catalog(path, KNOWN)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)

    assert not FORBIDDEN & set(_opened), "a file outside the catalog folder or a device was opened"
    assert not any(p.endswith(("pipe.jpg", "folder.jpg")) for p in _opened)
    hard = loaded.quarantine.filter(~pl.col("kept_without_image"))
    assert loaded.products.height + hard.height == len(feed)
    assert loaded.counts["rows"] == len(feed)
    reasons = loaded.quarantine.get_column("reason").str.split(REASON_SEPARATOR).explode()
    assert set(reasons.to_list()) <= set(QUARANTINE_REASONS)
    kept = set(range(len(feed))) - set(hard.get_column("source_row").to_list())
    assert len(kept) == loaded.products.height
    titles = set(loaded.products.get_column("title").to_list())
    for row in kept:  # text is data: an SQL-looking title is kept as written
        if feed[row]["title"] in ("'); DROP TABLE rankings; --", "SELECT * FROM catalog"):
            assert feed[row]["title"] in titles
    images = loaded.products.get_column("image_path").drop_nulls()
    assert images.str.ends_with("/ok.png").all()  # only the readable image inside the folder is kept
