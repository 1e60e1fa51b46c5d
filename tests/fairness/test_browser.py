"""The Fairness page in real headless Chromium on the seeded dashboard database (a real tick
on simulated data whose `critical` recall collapses in region south from day 10)."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.dashboards.conftest import seeded_sqlite  # noqa: F401 - fixture
from tests.e2e.conftest import (  # noqa: F401 - fixtures
    CHROMEDRIVER,
    CHROMIUM,
    SCREENSHOTS,
    browser,
    serve_dashboard,
    wait_until,
)
from tests.e2e.test_dashboard import HIDE_DEV_TOOLS, assert_clean, open_page, settled

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium"),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="browser tests need Chromium and chromedriver on PATH"),
]


def pick(browser: Any, dropdown_id: str, option_text: str) -> None:  # noqa: F811
    """Choose a dropdown option by its exact class (the options' container class
    `dash-dropdown-options` also contains 'dash-dropdown-option')."""
    browser.find_element(By.ID, dropdown_id).click()
    xpath = ("//*[contains(concat(' ', normalize-space(@class), ' '), ' dash-dropdown-option ')]"
             f"[normalize-space(.)='{option_text}']")
    wait_until(lambda: browser.find_element(By.XPATH, xpath), message=option_text).click()
    wait_until(lambda: option_text in browser.find_element(By.ID, dropdown_id).text,
               message=f"{dropdown_id} to show {option_text}")


def test_fairness_page_draws_flags_the_faulty_region_and_follows_the_metric(
        browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:  # noqa: F811
    live = serve_dashboard(seeded_sqlite.config_path)
    open_page(browser, live, "/fairness?model=triage&window=7d&class=critical&segment=region",
              "#fairness-worst-table tbody tr")
    gap_title = browser.find_element(By.CSS_SELECTOR, "#fairness-gap .gtitle").text
    assert "Largest true positive rate gap" in gap_title and "critical" in gap_title
    bars_title = "#fairness-groups .gtitle"
    assert "True positive rate by region" in browser.find_element(By.CSS_SELECTOR, bars_title).text
    assert "south" in browser.find_element(By.ID, "fairness-worst-table").text
    assert_clean(browser, live, "/fairness")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script(HIDE_DEV_TOOLS)
    size = browser.get_window_size()
    browser.set_window_size(size["width"], 2000)  # the whole page in one picture
    try:
        wait_until(lambda: settled(browser), message="resize to settle")
        browser.save_screenshot(str(SCREENSHOTS / "fairness.png"))
    finally:
        browser.set_window_size(size["width"], size["height"])
    pick(browser, "fairness-metric", "selection rate: demographic parity")
    wait_until(lambda: "Selection rate by region"
               in browser.find_element(By.CSS_SELECTOR, bars_title).text,
               message="the bars to follow the metric")
    assert_clean(browser, live, "/fairness after choosing a metric")
