"""HTML page reports, read from the analysts' DuckDB file: one self-contained file per published page (what
it shows and why, what the rules kept off, what changed since the previous publication, its health) and an
index of every page, those needing a look first. Plain HTML and CSS, no script, no network: a merchandiser
opens them from a shared folder, a browser renders them offline."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from seestocks_rank.inputs.errors import InputError
from seestocks_rank.inputs.pages import page_slug

INDEX = "index.html"
TOP_CONTRIBUTIONS = 3
MAX_EXCLUSIONS = 200
THUMBNAILS = "thumbs"
THUMBNAIL_PX = 72

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:9px;vertical-align:middle}.pos{background:#3a7}.neg{background:#c44}
.warn{color:#a40;font-weight:600}.muted{color:#777}
"""


def _e(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def _num(value: object, fmt: str = "{:.2f}") -> str:
    return "" if value is None else fmt.format(value)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _document(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def page_file_name(category_id: int, path: str) -> str:
    """The report's file name: the category id and a slug of the page name (stable across runs)."""
    return f"{category_id}-{page_slug(path.split(' > ')[-1])}.html"


def thumbnail(image_path: str | None, folder: Path) -> str | None:
    """The relative ``src`` of a small JPEG copy of the product image, made once per version of the image
    (the name hashes its path, size and modification time), or None when there is no readable image. The
    reports stay small and readable from another machine, without the catalog's image folder."""
    if not image_path:
        return None
    source = Path(image_path)
    try:
        stat = source.stat()
    except OSError:
        return None
    name = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20] + ".jpg"
    target = folder / THUMBNAILS / name
    if not target.exists():
        from PIL import Image

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        try:
            with Image.open(source) as image:
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                image.convert("RGB").save(tmp, "JPEG", quality=80)
        except (OSError, ValueError, Image.DecompressionBombError):
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, target)
    return f"{THUMBNAILS}/{name}"


def _contributions(row: dict, signals: list[str]) -> str:
    """The row's largest contributions as signed bars, biggest first."""
    pairs = sorted(((s, row[f"contribution_{s}"] or 0.0) for s in signals), key=lambda p: -abs(p[1]))
    scale = max((abs(v) for _, v in pairs), default=0.0) or 1.0
    parts = [
        f'<span class="bar {"pos" if v >= 0 else "neg"}" style="width:{40 * abs(v) / scale:.0f}px"></span> '
        f"{_e(s)} {v:+.2f}"
        for s, v in pairs[:TOP_CONTRIBUTIONS]
    ]
    return "<br>".join(parts)


def _image_cell(image_path: str | None, folder: Path) -> str:
    src = thumbnail(image_path, folder)
    return f'<img src="{_e(src)}" alt="" width="{THUMBNAIL_PX}" loading="lazy">' if src else ""


class _ReportData:
    """Everything the page reports show, read with one query per table or view for all the pages (a query per
    page costs ~40 ms at 1,347 pages: most of the publication) and split by page."""

    def __init__(self, con: duckdb.DuckDBPyConnection, page_ids: list[int]) -> None:
        wanted = "category_id IN (SELECT unnest($1::BIGINT[]))"

        def by_page(sql: str) -> dict[int | None, pl.DataFrame]:
            frame = con.sql(sql, params=[page_ids]).pl()
            parts = {key[0]: part for key, part in frame.partition_by("category_id", as_dict=True).items()}
            return {None: frame.clear(), **parts}  # None: the empty frame of a page without rows

        self.shown = by_page(
            "SELECT r.*, c.image_path FROM rankings r LEFT JOIN catalog c USING (offer_id) "
            f"WHERE r.{wanted} ORDER BY r.category_id, r.rank"
        )
        self.health = by_page(
            f"SELECT * FROM page_health WHERE {wanted} "
            "QUALIFY row_number() OVER (PARTITION BY category_id ORDER BY published_at DESC) = 1"
        )
        self.look = by_page(f"SELECT category_id, why FROM pages_needing_a_look WHERE {wanted}")
        self.churn = by_page(
            f"SELECT category_id, change, rank_now, rank_before, title, retailer, why FROM rank_churn WHERE {wanted}"
        )
        self.excluded = by_page(
            "SELECT category_id, CAST(status AS VARCHAR) AS status, title, retailer, price, confidence, reason, "
            f"count(*) OVER (PARTITION BY category_id) AS n FROM page_exclusions e WHERE {wanted} "
            "QUALIFY row_number() OVER (PARTITION BY category_id ORDER BY e.status, confidence DESC, offer_id) <= "
            f"{MAX_EXCLUSIONS} ORDER BY category_id, e.status, confidence DESC, offer_id"
        )

    @staticmethod
    def of(table: dict[int | None, pl.DataFrame], category_id: int) -> pl.DataFrame:
        """The page's rows of ``table`` (none: an empty frame with the table's columns)."""
        return table.get(category_id, table[None])


def _page_html(data: _ReportData, page: dict, folder: Path) -> str:
    cid, path = page["category_id"], page["path"]
    shown = data.of(data.shown, cid)
    signals = [c.removeprefix("contribution_") for c in shown.columns if c.startswith("contribution_")]
    signals = [s for s in signals if s != "bias"]
    rows = [
        [
            _e(r["rank"]), _e(r["title"]), _image_cell(r["image_path"], folder), _e(r["retailer"]),
            _num(r["price"]), _num(r["confidence"]), _num(r["final_score"]),
            _contributions(r, signals) if signals else "",
        ]
        for r in shown.iter_rows(named=True)
    ]  # fmt: skip
    health = data.of(data.health, cid)
    look = data.of(data.look, cid).select("why").rows()
    churn = data.of(data.churn, cid).drop("category_id", strict=False).rows()
    exclusions = data.of(data.excluded, cid)
    n_excluded = int(exclusions.get_column("n")[0]) if exclusions.height else 0
    excluded = exclusions.select("status", "title", "retailer", "price", "confidence", "reason").rows()
    parts = [f'<p><a href="{INDEX}">All pages</a></p><h1>{_e(path)}</h1>']
    if look:
        parts.append(f'<p class="warn">Needs a look: {_e(look[0][0])}</p>')
    if health.height:
        h = health.row(0, named=True)
        parts.append(
            f"<p>{h['shown']} of {h['page_size']} shown from {h['candidates_retrieved']} candidates; removed: "
            f"{h['removed_duplicate']} duplicate, {h['removed_out_of_category']} out of category, "
            f"{h['removed_stale']} stale, {h['removed_low_confidence']} low confidence. "
            f"Largest retailer's share of the top 10: {_num(h['top10_max_retailer_share'], '{:.0%}')}. "
            f'<span class="muted">Run {_e(h["run_id"])}, published {_e(h["published_at"])}.</span></p>'
        )
    parts.append("<h2>Shown</h2>")
    headers = ["rank", "title", "", "retailer", "price", "confidence", "score", "why (largest contributions)"]
    parts.append(_table(headers, rows, numeric={0, 4, 5, 6}))
    parts.append("<h2>Changes since the previous publication</h2>")
    parts.append(
        _table(
            ["change", "rank now", "rank before", "title", "retailer", "why"],
            [[_e(v) for v in r] for r in churn],
            numeric={1, 2},
        )  # fmt: skip
        if churn
        else '<p class="muted">No change in the top 10 (or no previous publication).</p>'
    )
    parts.append(f"<h2>Kept off the page ({n_excluded})</h2>")
    if n_excluded > len(excluded):
        parts.append(f'<p class="muted">The first {len(excluded)}; the rest are in page_exclusions.</p>')
    parts.append(_table(["status", "title", "retailer", "price", "confidence", "reason"],
                        [[_e(s), _e(t), _e(r), _num(p), _num(c), _e(why)] for s, t, r, p, c, why in excluded],
                        numeric={3, 4}))  # fmt: skip
    return _document(path, "".join(parts))


def health_chart(con: duckdb.DuckDBPyConnection) -> bytes | None:
    """A PNG of the latest publication's health: how full the pages are, what the rules removed, the
    confidence of what is shown and how much each top 10 changed. None before a publication with a ranking."""
    latest = "(SELECT run_id FROM runs ORDER BY published_at DESC LIMIT 1)"
    health = con.sql(f"SELECT * FROM page_health WHERE run_id = {latest}").pl()
    if health.is_empty():
        return None
    confidence = con.sql("SELECT confidence FROM rankings").pl().get_column("confidence").to_numpy()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entered = con.sql(
        "SELECT p.category_id, count(c.offer_id) AS n FROM category_pages p "
        "LEFT JOIN rank_churn c ON c.category_id = p.category_id AND c.change = 'entered' GROUP BY ALL"
    ).pl()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    axes[0].hist(health.get_column("page_filled_share").to_numpy(), bins=20, range=(0, 1), color="#37a")
    axes[0].set_title("pages by share filled")
    removed = ["removed_duplicate", "removed_out_of_category", "removed_stale", "removed_low_confidence"]
    axes[1].barh([r.removeprefix("removed_").replace("_", " ") for r in removed],
                 [health.get_column(r).sum() for r in removed], color="#c64")  # fmt: skip
    axes[1].set_title("candidates removed, all pages")
    axes[2].hist(confidence, bins=20, range=(0, 1), color="#3a7")
    axes[2].set_title("confidence of shown products")
    snapshots = con.execute("SELECT count(DISTINCT run_id) FROM ranking_history").fetchall()[0][0]
    if snapshots > 1:
        axes[3].hist(entered.get_column("n").to_numpy(), bins=range(0, 12), color="#86a")
        axes[3].set_title("pages by top-10 newcomers")
    else:
        axes[3].text(0.5, 0.5, "no previous publication", ha="center", va="center")
        axes[3].set_axis_off()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _index_html(con: duckdb.DuckDBPyConnection, pages: pl.DataFrame, chart: bytes | None) -> str:
    runs = con.execute("SELECT run_id, published_at, trigger FROM runs ORDER BY published_at DESC LIMIT 1").fetchall()
    run = runs[0] if runs else None
    health = con.sql(
        """SELECT h.category_id, h.shown, h.page_size, h.candidates_retrieved, h.removed_out_of_category,
                  h.top10_max_retailer_share, l.why
           FROM page_health h LEFT JOIN pages_needing_a_look l USING (category_id)
           WHERE h.run_id = (SELECT run_id FROM runs ORDER BY published_at DESC LIMIT 1)"""
    ).pl()
    table = pages.join(health, on="category_id", how="left").sort(
        [pl.col("why").is_null(), "path"], descending=[False, False]
    )
    rows = [
        [
            f'<a href="{_e(page_file_name(r["category_id"], r["path"]))}">{_e(r["path"])}</a>',
            _e(r["shown"]), _e(r["page_size"]), _e(r["candidates_retrieved"]), _e(r["removed_out_of_category"]),
            _num(r["top10_max_retailer_share"], "{:.0%}"), f'<span class="warn">{_e(r["why"])}</span>',
        ]
        for r in table.iter_rows(named=True)
    ]  # fmt: skip
    head = f"<h1>Category pages ({pages.height})</h1>"
    if run:
        head += f'<p class="muted">Publication of run {_e(run[0])} ({_e(run[2])}), {_e(run[1])}.</p>'
    if chart:
        head += f'<img alt="page health" src="data:image/png;base64,{base64.b64encode(chart).decode()}">'
    headers = ["page", "shown", "page size", "candidates", "out of category", "top-10 retailer share", "needs a look"]
    return _document("Category pages", head + _table(headers, rows, numeric={1, 2, 3, 4, 5}))


def select_pages(pages: pl.DataFrame, wanted: list[str] | None) -> pl.DataFrame:
    """The published pages named in ``wanted`` (a category id, a page key or a page name, any case); all of
    them when ``wanted`` is empty. Raises :class:`InputError` naming a page that is not published."""
    if not wanted:
        return pages
    slugs = pages.get_column("path").map_elements(lambda p: page_slug(p.split(" > ")[-1]), return_dtype=pl.Utf8)
    keyed = pages.with_columns(slug=slugs)
    chosen = []
    for name in wanted:
        hit = keyed.filter(
            (pl.col("category_id").cast(pl.Utf8) == name.strip())
            | (pl.col("page_key") == name)
            | (pl.col("slug") == page_slug(name))
        )
        if hit.is_empty():
            raise InputError(f"no published page {name!r}: give a category id, a page key or a page name")
        chosen.append(hit)
    return pl.concat(chosen).unique("category_id", maintain_order=True).drop("slug")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class PageReports:
    """What :func:`write_page_reports` wrote: the files (the index last) and the health chart in the index."""

    files: list[Path]
    health_chart: bytes | None


def write_page_reports(duckdb_path: str | Path, folder: str | Path, pages: list[str] | None = None) -> PageReports:
    """Write one HTML report per published page (or per page named in ``pages``) and the index of every
    page into ``folder``. Each file is replaced atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        published = con.sql("SELECT category_id, path, page_key FROM category_pages ORDER BY path").pl()
        chosen = select_pages(published, pages)
        data = _ReportData(con, chosen.get_column("category_id").to_list())
        written = []
        for page in chosen.iter_rows(named=True):  # a loop over pages, each written from its frames
            target = folder / page_file_name(page["category_id"], page["path"])
            _write(target, _page_html(data, page, folder))
            written.append(target)
        chart = health_chart(con)
        _write(folder / INDEX, _index_html(con, published, chart))
    return PageReports([*written, folder / INDEX], chart)
