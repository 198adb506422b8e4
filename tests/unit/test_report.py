"""The HTML report: self-contained, escaped, and its figures are `summary --json`'s."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from handlers.core.generate import generate_batch
from handlers.core.storage import LocalStorage
from handlers.core.transform import transform_object
from pipeline import report
from pipeline.cli import main
from pipeline.quarantine import summarise
from tests.helpers import encode

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now() -> None:
    """Read the clock when each test starts, not once at import (runs cross midnight)."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


HOSTILE = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'


def land(root: Path, key: str, lines: list[bytes], landed: datetime) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    os.utime(path, (landed.timestamp(), landed.timestamp()))
    transform_object(LocalStorage(root), key, now=landed + timedelta(seconds=1))


def records(n: int, seed: int, landed: datetime) -> list[dict[str, Any]]:
    return [dict(g.payload) for g in generate_batch(n, seed=seed, reference_time=landed)]  # type: ignore[arg-type]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    for day, seed in ((2, 1), (1, 2), (0, 3)):
        landed = NOW - timedelta(days=day)
        batch = records(30, seed, landed)
        for n in range(0, 30, 4 + day):
            batch[n]["category"] = HOSTILE if n % 3 else "Weapons"
        batch[1]["quantity"] = 0
        lines = [encode(r) for r in batch]
        lines.append(b'{"broken": ' + HOSTILE.encode())
        land(root, f"raw/day{day}.jsonl", lines, landed)
    return root


class Page(HTMLParser):
    """Collects what the tests look at: tables by id, data blocks, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[dict[str, str | None], str]]]] = {}
        self.external: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.data_block = ""
        self.kpis: dict[str, str] = {}
        self._table: str | None = None
        self._cell: dict[str, str | None] | None = None
        self._text: list[str] = []
        self._in_data = False
        self._kpi: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href"):
            if a.get(name):
                self.external.append(str(a[name]))
        if tag == "link":
            self.external.append(str(a))
        if tag == "script":
            self.scripts.append(a)
            self._in_data = a.get("id") == "report-data"
        if tag == "table" and a.get("id"):
            self._table = str(a["id"])
            self.tables[self._table] = []
        if self._table and tag == "tr":
            self.tables[self._table].append([])
        if self._table and tag in ("td", "th"):
            self._cell, self._text = a, []
        if tag == "div" and str(a.get("id", "")).startswith("kpi-"):
            self._kpi = str(a["id"])[4:]
            self.kpis[self._kpi] = str(a.get("data-value"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        if self._table and tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append((self._cell, "".join(self._text).strip()))
            self._cell = None
        if tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data
        if self._cell is not None:
            self._text.append(data)


def build(lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Page, dict]:
    out = tmp_path / "report.html"
    assert main(["report", "--lake", str(lake), "--out", str(out), "--samples", "2"]) == 0
    capsys.readouterr()
    assert main(["quarantine", "summary", "--lake", str(lake), "--json", "--top", "15"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = Page()
    page.feed(out.read_text(encoding="utf-8"))
    page.close()
    return page, summary


def rows(page: Page, table: str) -> list[list[tuple[dict[str, str | None], str]]]:
    return [r for r in page.tables[table] if r and "data-field" in r[-1][0]]


def test_figures_are_those_of_summary_json(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, summary = build(lake, tmp_path, capsys)
    data = json.loads(page.data_block)
    for figures in (data, summary):
        figures.pop("generated_at")
    assert data == summary
    totals = summary["totals"]
    assert totals["records"] == 3 * 31 and totals["quarantined"] > 0
    # The visible tiles and cells say the same as the JSON.
    assert page.kpis["records"] == str(totals["records"])
    assert page.kpis["quarantined"] == str(totals["quarantined"])
    by_day = rows(page, "by-day")
    assert [r[0][1] for r in by_day] == [d["day"] for d in summary["by_day"]]
    for row, day in zip(by_day, summary["by_day"], strict=True):
        cells = {c.get("data-field"): (c.get("data-value"), text) for c, text in row[1:]}
        for field in ("processed", "quarantined", "records"):
            assert cells[field] == (str(day[field]), f"{day[field]:,}")
        assert cells["rate"] == (str(day["quarantine_rate"]), f"{day['quarantine_rate']:.2%}")
    by_rule = rows(page, "by-rule")
    assert [(r[0][1], int(r[1][1].replace(",", ""))) for r in by_rule] == [
        (r["rule"], r["entries"]) for r in summary["by_rule"]
    ]
    values = rows(page, "top-values-table")
    assert [(r[0][1], r[1][1], int(r[2][1])) for r in values] == [
        (v["rule"], v["value"], v["count"]) for v in summary["top_values"]
    ]


def test_page_is_self_contained_and_escaped(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, _summary = build(lake, tmp_path, capsys)
    assert page.external == []  # no URL to fetch: works offline
    assert page.scripts == [{"type": "application/json", "id": "report-data"}]
    html_text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html_text and "<img src=x" not in html_text
    assert "&lt;/script&gt;&lt;script&gt;alert" in html_text  # shown, as text
    data = json.loads(page.data_block)
    assert any("</script><script>alert" in v["value"] for v in data["top_values"])
    assert "<" not in page.data_block
    # Every chart is well-formed SVG.
    charts = re.findall(r"<svg .*?</svg>", html_text, flags=re.S)
    assert len(charts) >= 4
    for chart in charts:
        ET.fromstring(chart)
    # Each rule has samples; the contract table is there with failure badges.
    assert 'id="samples"' in html_text and "data-entry-id=" in html_text
    contract = page.tables["contract-table"]
    assert [r[0][1] for r in contract[1:]][:2] == ["transaction_id", "timestamp"]
    assert 'class="badge"' in html_text


def test_empty_lake_still_renders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    html_text = report.render_report(summarise(LocalStorage(tmp_path / "empty")))
    page = Page()
    page.feed(html_text)
    assert json.loads(page.data_block)["totals"]["records"] == 0
    assert "No data." in html_text


def test_embedded_json_cannot_end_its_script() -> None:
    text = report.embed_json({"v": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"v": "</script><!-- & -->"}


def test_nice_ceiling() -> None:
    assert [report.nice_ceiling(v) for v in (0, 0.07, 1, 3, 7, 11, 2400, 0.3)] == [
        1.0,
        0.1,
        1.0,
        5.0,
        10.0,
        20.0,
        2500.0,
        0.5,
    ]


def test_rate_points_bucket_many_sources() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sources = [
        {
            "transformed_at": (start + timedelta(minutes=5 * n)).isoformat(),
            "quarantined": n % 3,
            "records": 10,
        }
        for n in range(1000)
    ]
    points = report.rate_points(sources)
    assert points[0][3] == "hour" and len(points) == 84
    assert sum(p[1] for p in points) == sum(s["quarantined"] for s in sources)
    assert sum(p[2] for p in points) == 10_000
    few = report.rate_points(sources[:5])
    assert [p[3] for p in few] == ["source object"] * 5


def test_charts_escape_labels() -> None:
    svg = report.hbars([("<b>&", 3)]) + report.stacked_bars(["<d>"], [1], [2])
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "&lt;d&gt;" in svg
    for chart in re.findall(r"<svg .*?</svg>", svg, flags=re.S):
        ET.fromstring(chart)
