"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by playwright)
while real weekly figures stream through the whole pipeline: the page loads, its
numbers follow the ingest without a reload, and the chart marks the China/US
crossovers the share stage published, in the two series' colours on the screenshot.
The screenshot is kept as docs/dashboard.png (the README shows it)."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.paths import ROOT
from tests.pipeline import Pipeline
from tests.weekly import WEEKLY, expected_final, recompute, rules_file
from tokenshare.dashboard import vendor
from tokenshare.processes import free_ports, spawn, stop, wait_until
from tokenshare.producers.kafka_producer import EventProducer
from tokenshare.producers.weekly_replay import load_week_totals, replay_events
from tokenshare.settings import Settings

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "dashboard.png"
SPLIT = "2026-02-02"  # the first phase ends before the first crossover week (2026-W07)
WAIT_MS = 180_000  # generous: the machine may be busy; each wait ends as soon as it holds


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"rules_file": rules_file(tmp_path)})


@pytest.fixture
def dashboard(pipeline: Pipeline) -> Iterator[str]:
    """`tokenshare dashboard` as an operator runs it, beside the running pipeline."""
    vendor.ensure()  # what `make install` does; cached
    (port,) = free_ports(1)
    log = pipeline.settings.home / "logs" / "dashboard.log"
    proc = spawn(pipeline.settings, ["dashboard", "--port", str(port)], log)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    wait_until(up, 60, "the dashboard")
    yield url
    stop(proc)


def send(settings: Settings, events: list[dict[str, Any]]) -> None:
    with EventProducer(settings) as producer:
        for start in range(0, len(events), 50):
            producer.send_batch(events[start : start + 50])


def shown(page: Page, selector: str, attribute: str) -> str:
    value = page.get_attribute(selector, attribute)
    assert value is not None, selector
    return value


def wait_events(page: Page, count: int) -> None:
    """Until the page counts `count` events, and then one refresh more: that snapshot
    was read after every row (and its rollup) was stored."""
    page.wait_for_function(
        "n => document.getElementById('events').dataset.value === String(n)",
        arg=count,
        timeout=WAIT_MS,
    )
    page.wait_for_function(
        "n => Number(document.body.dataset.updates) > n",
        arg=int(shown(page, "body", "data-updates")),
        timeout=WAIT_MS,
    )


def pixels_near(image: Image.Image, colour: str, tolerance: int = 12) -> int:
    """How many pixels of `image` are within `tolerance` per channel of `colour` (#rrggbb)."""
    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    raw = image.convert("RGB").tobytes()
    return sum(
        1
        for i in range(0, len(raw), 3)
        if all(abs(raw[i + k] - want[k]) <= tolerance for k in range(3))
    )


def test_dashboard_follows_the_ingest_and_marks_the_crossovers(
    pipeline: Pipeline, dashboard: str
) -> None:
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "apt-get install -y chromium"
    settings = pipeline.settings
    events = list(replay_events(load_week_totals(WEEKLY)))
    before = [e for e in events if str(e["ts"]) < SPLIT]
    after = [e for e in events if str(e["ts"]) >= SPLIT]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(dashboard)
        # The page loads and reads the (empty) store.
        page.wait_for_function("document.body.dataset.state === 'ready'", timeout=WAIT_MS)
        assert shown(page, "#events", "data-value") == "0"

        # Phase 1: the weeks before the first crossover; the open page follows.
        send(settings, before)
        pipeline.wait_drained()
        wait_events(page, len(before))
        updates = int(shown(page, "body", "data-updates"))
        series = {s["value"]: s["colour"] for s in json.loads(shown(page, "#chart", "data-series"))}
        assert {"China", "US"} <= set(series)
        assert page.locator("#crossovers li[data-leader='China']").count() == 0

        # Phase 2: the rest streams in; the same page, never reloaded, shows it.
        send(settings, after)
        pipeline.wait_drained()
        wait_events(page, len(events))
        assert int(shown(page, "body", "data-updates")) > updates
        want = expected_final()
        try:
            page.wait_for_function(
                "n => document.querySelectorAll('#crossovers li[data-status=final]').length >= n",
                arg=len(want),
                timeout=WAIT_MS,
            )
        except PlaywrightTimeout as exc:
            marked = page.inner_text("#crossovers")
            raise AssertionError(f"marked: {marked!r}, want {want}\n{pipeline.logs()}") from exc
        final = page.eval_on_selector_all(
            "#crossovers li[data-status=final]",
            "items => items.map(li => [li.dataset.leader, li.dataset.overtaken, li.textContent])",
        )
        assert [(f"{leader}>{overtaken}") for leader, overtaken, _ in final] == [s for _, s in want]
        assert [text.split(":")[0] for _, _, text in final] == [w for w, _ in want]
        # Every mark is drawn; those of the open week are provisional, and the recomputation
        # finds them too.
        marks = page.eval_on_selector_all(
            "#crossovers li",
            "items => items.map(li => [li.textContent.split(':')[0],"
            " li.dataset.leader + '>' + li.dataset.overtaken, li.dataset.status])",
        )
        assert int(shown(page, "#chart", "data-crossovers")) == len(marks)
        recomputed = {(week, subject) for week, subject, _, _ in recompute()}
        assert {(w, s) for w, s, status in marks if status != "final"} <= recomputed - set(want)
        # The catalog gaps list the slugs the catalog does not know; the feed, the alerts.
        gaps = page.eval_on_selector_all("#gaps tbody tr", "rows => rows.map(r => r.dataset.model)")
        assert gaps and all(str(g).startswith("openrouter/") for g in gaps)
        assert page.locator("#alerts tbody tr[data-rule='crossover']").count() >= len(want)
        assert page.locator("#movers tbody tr[data-value]").count() >= 2

        # Pixels: both series and the crossover marks are drawn on the chart.
        chart = Image.open(io.BytesIO(page.locator("#chart canvas").screenshot()))
        colours = {
            s["value"]: s["colour"] for s in json.loads(shown(page, "#chart", "data-series"))
        }
        mark = shown(page, "#chart", "data-mark")
        for name, colour in [("China", colours["China"]), ("US", colours["US"]), ("mark", mark)]:
            assert pixels_near(chart, colour) > 200, f"{name} ({colour}) is not on the chart"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # The dimension picker: shares of authors (the slugs' prefixes) over requests.
        page.select_option("select[name=dimension]", "author")
        page.select_option("select[name=measure]", "requests")
        page.wait_for_function(
            "document.getElementById('chart-title').textContent.includes('requests by author')",
            timeout=WAIT_MS,
        )
        authors = {str(e["model"]).split("/")[0] for e in events}
        values = [s["value"] for s in json.loads(shown(page, "#chart", "data-series"))]
        assert values and all(v in authors or v.startswith("other (") for v in values), values
        assert "dimension=author" in page.url and "measure=requests" in page.url
        browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
