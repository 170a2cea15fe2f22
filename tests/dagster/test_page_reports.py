"""The HTML page reports the nightly writes, read the way a merchandiser reads them: in a browser."""

import html
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from seestocks_rank.evaluation.page_report import INDEX, page_file_name, write_page_reports
from seestocks_rank.inputs.errors import InputError
from seestocks_rank.store.layout import DataRoot

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _pages(data_dir: Path) -> list[tuple[int, str]]:
    with duckdb.connect(str(DataRoot.at(data_dir).duckdb), read_only=True) as con:
        return con.execute("SELECT category_id, path FROM category_pages ORDER BY path").fetchall()


def _shown(data_dir: Path, category_id: int) -> list[str]:
    with duckdb.connect(str(DataRoot.at(data_dir).duckdb), read_only=True) as con:
        rows = con.execute("SELECT title FROM rankings WHERE category_id = ? ORDER BY rank", [category_id])
        return [t for (t,) in rows.fetchall()]


def test_the_nightly_writes_one_report_per_published_page_in_rank_order(pipeline_run):
    _, _, data_dir = pipeline_run
    folder = DataRoot.at(data_dir).reports / "pages"
    pages = _pages(data_dir)
    assert sorted(p.name for p in folder.glob("*.html")) == sorted([INDEX, *(page_file_name(*p) for p in pages)])
    category_id, path = pages[0]
    text = (folder / page_file_name(category_id, path)).read_text()
    shown = text.split("<h2>Shown</h2>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr><td class=\"num\">\d+</td><td>(.*?)</td>", shown)  # rank, then title
    assert cells and cells == [html.escape(t) for t in _shown(data_dir, category_id)]  # in rank order
    index = (folder / INDEX).read_text()
    assert all(f'href="{page_file_name(*p)}"' in index for p in pages)


def test_reports_for_named_pages_only_and_an_unknown_page_is_named(pipeline_run, tmp_path: Path):
    _, _, data_dir = pipeline_run
    category_id, path = _pages(data_dir)[0]
    written = write_page_reports(DataRoot.at(data_dir).duckdb, tmp_path, pages=[path.split(" > ")[-1].upper()]).files
    assert [p.name for p in written] == [page_file_name(category_id, path), INDEX]
    with pytest.raises(InputError, match="no published page 'Nowhere'"):
        write_page_reports(DataRoot.at(data_dir).duckdb, tmp_path, pages=["Nowhere"])


def _browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (.ci/run installs it)")
def test_a_browser_renders_the_index_and_a_page(pipeline_run, tmp_path: Path):
    _, _, data_dir = pipeline_run
    folder = DataRoot.at(data_dir).reports / "pages"
    pages = _pages(data_dir)
    dom = _browser("--dump-dom", (folder / INDEX).as_uri()).stdout
    assert len(re.findall(r'<a href="\d+-[a-z0-9-]+\.html"', dom)) == len(pages)
    assert 'alt="page health"' in dom

    category_id, path = pages[0]
    page = folder / page_file_name(category_id, path)
    dom = _browser("--dump-dom", page.as_uri()).stdout
    shown_table = dom.split("<h2>Shown</h2>", 1)[1].split("</table>", 1)[0]
    assert shown_table.count("<tr>") == 1 + len(_shown(data_dir, category_id))  # header + one per product

    screenshot = tmp_path / "page.png"
    _browser(f"--screenshot={screenshot}", "--window-size=1200,900", page.as_uri())
    pixels = np.asarray(Image.open(screenshot).convert("L"))
    assert pixels.std() > 10  # text and bars drawn, not a blank page
