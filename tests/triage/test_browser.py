"""The triage answers in real headless Chromium: the Overview names the seeded fault (region
south, class critical) with no filter change and links to its evidence; a backfilled year
with a proven drop and no alert shows a red badge, and its Alerts page says why it is empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.dashboards.seeding import Seeded
from tests.e2e.conftest import LiveApp, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]
CARD = "#overview-cards .model-card"


def overview_text(browser: Any, live: LiveApp) -> str:
    browser.get(live.url + "/")
    return str(wait_until(lambda: " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, CARD)
                                           if "Open alerts" in e.text),
                          message="the Overview's cards"))


def test_overview_names_the_faulty_slice_without_a_filter_change(browser: Any, serve_dashboard: Any,
                                                                  seeded_sqlite: Seeded) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    text = overview_text(browser, live)
    first_incident = browser.find_element(By.CSS_SELECTOR, ".overview-incidents .incident-card").text
    first_slice = browser.find_element(By.CSS_SELECTOR, ".overview-worst li").text
    assert "Recall of critical dropped in region=south" in first_incident and "firing" in first_incident
    assert "critical · region=south" in first_slice and "drop proven" in first_slice
    assert "window ending 2024-01-22" in text
    link = browser.find_element(By.CSS_SELECTOR, ".overview-worst li a")
    link.click()
    wait_until(lambda: "/subgroups" in browser.current_url, message="the evidence page")
    assert "segment=region" in browser.current_url and "class=critical" in browser.current_url
    assert live.server_errors == []


def test_a_backfilled_year_with_a_proven_drop_shows_a_red_badge(browser: Any, serve_dashboard: Any,
                                                                backfill: Path) -> None:
    live = serve_dashboard(backfill)
    overview_text(browser, live)
    badge = browser.find_element(By.CSS_SELECTOR, f"{CARD} .card-header .badge")
    assert badge.text == "drop proven" and "bg-danger" in badge.get_attribute("class")
    browser.get(live.url + "/alerts?model=triage")
    wait_until(lambda: "older than the alert look-back" in browser.find_element(By.TAG_NAME, "body").text,
               message="the Alerts page's explanation")
    assert "monitor backtest" in browser.find_element(By.TAG_NAME, "body").text
    assert live.server_errors == []
