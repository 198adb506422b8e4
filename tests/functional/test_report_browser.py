"""report.html as a reader sees it: rendered by headless Chromium, checked in the live page."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from handlers.core.storage import LocalStorage
from handlers.generator import run_generator
from pipeline import quarantine as q
from pipeline.cli import deliver
from pipeline.report import render_report
from tests.cdp import Chromium, find_chromium

ROOT = Path(__file__).resolve().parents[2]
# Where the screenshot goes for the test log (build/ is ignored by git).
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
CHART_SECTIONS = ("records-per-day", "rate-over-time", "failures-by-rule")

# Every figure the page shows, read from the rendered DOM (layout included).
PAGE_FACTS = """(() => {
  const shown = (el) => {
    if (!el) return false;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && style.display !== 'none' && parseFloat(style.opacity) > 0;
  };
  const kpis = {};
  for (const el of document.querySelectorAll('.kpi')) {
    kpis[el.id] = {shown: shown(el), text: el.querySelector('.value').textContent.trim()};
  }
  const rules = [...document.querySelectorAll('#by-rule tbody tr')].map(tr => ({
    shown: shown(tr), cells: [...tr.cells].map(c => c.textContent.trim())}));
  const charts = [...document.querySelectorAll('section svg')].map(svg => ({
    section: svg.closest('section').id, shown: shown(svg),
    width: svg.getBoundingClientRect().width,
    marks: svg.querySelectorAll('rect, path, polyline, polygon, circle, line').length}));
  return {kpis, rules, charts, scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth};
})()"""


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium not found (set CHROMIUM or `apt-get install chromium`; .ci/run does)")
    return binary


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A lake with faults in it, its report.html, and the transformer's own totals."""
    lake = LocalStorage(tmp_path / "lake")
    totals: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for n in range(3):
        batch = run_generator(
            lake,
            count=150,
            seed=n,
            reference_time=datetime(2026, 1, 5 + n, 12, 0, tzinfo=UTC),  # all in the past
            fault_rate=0.1,
        )
        result = deliver(lake, batch["key"])
        totals.update(records=result.records_in, processed=result.processed)
        totals.update(quarantined=result.quarantined)
        by_rule.update(result.quarantined_by_check)
    page = tmp_path / "report.html"
    page.write_text(render_report(q.summarise(lake, samples_per_rule=2)), encoding="utf-8")
    return page, {"totals": totals, "by_rule": by_rule}


def test_report_renders_totals_rules_and_charts_without_errors(
    chromium_binary: str, report: tuple[Path, dict[str, Any]]
) -> None:
    page, expected = report
    with Chromium(chromium_binary) as browser:
        browser.open(page.as_uri())
        facts = browser.evaluate(PAGE_FACTS)
        shot = browser.screenshot(ARTIFACTS / "report.png")
        errors = list(browser.errors)
    print(f"screenshot of the rendered report: {shot}")

    totals = expected["totals"]
    kpis = facts["kpis"]
    assert all(k["shown"] for k in kpis.values()), kpis
    assert kpis["kpi-records"]["text"] == f"{totals['records']:,}"
    assert kpis["kpi-processed"]["text"] == f"{totals['processed']:,}"
    assert kpis["kpi-quarantined"]["text"] == f"{totals['quarantined']:,}"
    assert totals["quarantined"] > 0  # the page has something to show

    rows = {r["cells"][0]: int(r["cells"][1].replace(",", "")) for r in facts["rules"]}
    assert all(r["shown"] for r in facts["rules"])
    assert rows == dict(expected["by_rule"])

    for section in CHART_SECTIONS:
        charts = [c for c in facts["charts"] if c["section"] == section]
        assert charts, f"no chart in #{section}"
        for chart in charts:
            assert chart["shown"] and chart["width"] > 300 and chart["marks"] > 0, chart
    assert facts["scrollWidth"] <= facts["innerWidth"], "the page scrolls sideways"

    assert errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_console_errors_are_caught(chromium_binary: str, tmp_path: Path) -> None:
    """The error check above can fail: a page that logs an error is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><script>console.error('boom')</script><p>x</p>")
    with Chromium(chromium_binary) as browser:
        browser.open(page.as_uri())
        assert any("boom" in e for e in browser.errors)
