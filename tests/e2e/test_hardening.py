"""Issue 12 in a real headless Chromium: the Content-Security-Policy is enforced and no page
breaks it, plotly markup in data is drawn as text (no <a> in the SVG), the segment overflow
warning, the read-only dashboard with only a token, and a database outage the dashboard
recovers from by itself. Screenshots go to $MONITOR_SCREENSHOTS (see conftest)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import dash
import pandas as pd
import pytest
import requests
from selenium.webdriver.common.by import By

from dashboards.availability import UNAVAILABLE
from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.store.db import make_engine
from tests.dashboards.seeding import AS_OF
from tests.e2e.conftest import SCREENSHOTS, wait_until
from tests.e2e.test_dashboard import HIDE_DEV_TOOLS, assert_clean, console_errors, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]

LINK = '<a href="http://evil">x</a>'


def screenshot(browser: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script(HIDE_DEV_TOOLS)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_the_policy_is_enforced_and_no_page_violates_it(browser: Any, serve_dashboard: Any,
                                                        seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    headers = requests.get(live.url + "/", timeout=30).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    for page in dash.page_registry.values():
        open_page(browser, live, page["relative_path"])
        assert_clean(browser, live, page["relative_path"])  # a CSP violation is a console error
    # an injected inline script is refused, and the refusal is what the console would show
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
                           "document.body.appendChild(s);")
    assert browser.execute_script("return window.__injected") is None
    assert any("Content Security Policy" in message for message in console_errors(browser))


def add_rows(seeded: Any, region_values: list[str], per_value: int = 40) -> None:
    """Predictions (labelled as predicted) of the seeded model in the given regions, 3 days before
    the end of the data, through the real ingest pipeline."""
    config = load_config(seeded.config_path)
    rows = seeded.data.predictions.iloc[: per_value * len(region_values)].copy()
    rows["prediction_id"] = [f"hostile-{i}" for i in range(len(rows))]
    rows["timestamp"] = pd.Timestamp(AS_OF - 3 * 86400, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    rows["region"] = [value for value in region_values for _ in range(per_value)]
    labels = pd.DataFrame({"prediction_id": rows["prediction_id"], "label": rows["prediction"],
                           "label_timestamp": pd.Timestamp(AS_OF - 2 * 86400, unit="s", tz="UTC")
                           .strftime("%Y-%m-%dT%H:%M:%SZ")})
    engine = make_engine(seeded.database_url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.model("triage"))
        ingest_frame(conn, ctx, "predictions", rows, as_of=AS_OF)
        ingest_frame(conn, ctx, "labels", labels, as_of=AS_OF)
    engine.dispose()


def test_markup_in_a_segment_value_is_drawn_as_text_and_overflow_is_warned(
        browser: Any, serve_dashboard: Any, writable_seeded: Any) -> None:
    add_rows(writable_seeded, [LINK, "(other)"])
    live = serve_dashboard(writable_seeded.config_path)
    open_page(browser, live, "/subgroups?model=triage&segment=region", "#subgroups-heatmap .hm")
    wait_until(lambda: LINK in browser.find_element(By.ID, "subgroups-heatmap").text,
               message="the hostile region as a literal tick label")
    assert browser.execute_script("return document.querySelectorAll('svg a').length") == 0
    assert_clean(browser, live, "/subgroups with markup in a segment value")
    screenshot(browser, "subgroups-hostile")

    open_page(browser, live, "/data?model=triage", ".segment-overflow")
    # found afresh on each poll: the live refresh may redraw the warning between find and read
    wait_until(lambda: "segment 'region' has more than 500 distinct values"
               in browser.find_element(By.CSS_SELECTOR, ".segment-overflow").text,
               message="the overflow warning on the Data page")
    assert_clean(browser, live, "/data with an overflowed segment")
    screenshot(browser, "data-segment-overflow")


def test_with_only_a_token_the_alerts_page_is_read_only(browser: Any, serve_dashboard: Any, writable_seeded: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", "a-token-with-enough-entropy")
    live = serve_dashboard(writable_seeded.config_path)
    open_page(browser, live, "/alerts?model=triage", "#alerts-history-table tbody tr")
    assert "MONITOR_BASIC_AUTH" in browser.find_element(By.ID, "alerts-read-only").text
    for button in ("alerts-ack", "alerts-silence"):
        assert not browser.find_element(By.ID, button).is_enabled()
    assert_clean(browser, live, "/alerts read-only")
    screenshot(browser, "alerts-read-only")


def test_a_page_opened_during_an_outage_recovers_when_the_database_appears(
        browser: Any, serve_dashboard: Any, seeded_sqlite: Any, tmp_path: Path) -> None:
    target = tmp_path / "later" / "monitor.db"
    config_path = seeded_sqlite.config_path.parent / f"outage-{uuid.uuid4().hex[:6]}.toml"
    config_path.write_text(seeded_sqlite.config_path.read_text(encoding="utf-8")
                           .replace(seeded_sqlite.database_url, f"sqlite:///{target}"), encoding="utf-8")
    live = serve_dashboard(config_path)
    open_page(browser, live, "/", "#database-status-alert")
    wait_until(lambda: UNAVAILABLE in browser.find_element(By.ID, "overview-cards").text,
               message="the Overview's own message")
    screenshot(browser, "database-unavailable")
    browser.get_log("browser")  # failed requests while down are not what this test is about

    target.parent.mkdir()
    shutil.copy(seeded_sqlite.database_url.removeprefix("sqlite:///"), target)
    wait_until(lambda: not browser.find_elements(By.ID, "database-status-alert"), timeout=40,
               message="the banner to go once the database answers")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#overview-cards .model-card .main-svg"),
               message="the Overview cards, without a reload")
    assert_clean(browser, live, "/ after the database came back")
