"""Triage-first screens in a real headless Chromium on the seeded database (issue 13): the
Overview opens with the incident and names its cause slice (region=south, class critical),
its link leads to the Subgroups page filtered to that slice, and the Alerts page lists the
incident above the member alerts it explains; the Classes page draws the best current recall
with the calibration the estimate used (screenshot `classes-best.png`)."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.conftest import SCREENSHOTS, wait_until
from tests.e2e.test_dashboard import HIDE_DEV_TOOLS, assert_clean, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]

CAUSE = "#overview-cards .overview-incidents .incident-cause"


def test_the_overview_shows_the_incident_naming_its_cause(browser: Any, serve_dashboard: Any,
                                                          seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/", CAUSE)
    card = browser.find_element(By.CSS_SELECTOR, "#overview-cards .overview-incidents .incident-card")
    assert "incident #" in card.text and "critical" in card.text
    cause = browser.find_element(By.CSS_SELECTOR, CAUSE)
    assert cause.text.startswith("Recall of critical dropped in region=south: ")
    assert "vs reference" in cause.text and "n=" in cause.text
    assert "explains 6 alerts" in card.text
    # the incident comes first, above the headline numbers; the alerts it explains are not
    # listed again on the card
    model = browser.find_element(By.CSS_SELECTOR, "#overview-cards .model-card").text
    assert model.index("Open incidents") < model.index("Recall of critical (7d") < model.index("Other open alerts")
    assert "No other open alerts." in model
    assert_clean(browser, live, "/")
    cause.click()
    wait_until(lambda: "/subgroups?" in browser.current_url, message="the link to the cause slice")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#subgroups-worst-table tbody tr"),
               message="the Subgroups page filtered to the slice")
    assert "segment=region" in browser.current_url and "class=critical" in browser.current_url
    assert_clean(browser, live, "/subgroups from the incident")


def test_the_alerts_page_lists_the_incident_above_its_member_alerts(browser: Any, serve_dashboard: Any,
                                                                    seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/alerts?model=triage", "#alerts-incident-list .incident-cause")
    incidents = browser.find_element(By.ID, "alerts-incident-list")
    history = browser.find_element(By.ID, "alerts-history-table")
    assert "region=south" in incidents.text
    assert incidents.location["y"] < history.location["y"]
    marks = [cell.text for cell in history.find_elements(By.CSS_SELECTOR, "td.col-incident")]
    assert marks and all(mark.endswith("region=south") for mark in marks)
    assert_clean(browser, live, "/alerts")


def test_the_classes_page_draws_the_best_current_recall_and_its_calibration(browser: Any, serve_dashboard: Any,
                                                                            seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/classes?model=triage&class=critical", "#classes-best .scatterlayer .trace")
    names = browser.execute_script(
        "return document.querySelector('#classes-best .js-plotly-plot')._fullData.map(t => t.name)")
    assert {"realized (labelled only)", "estimated (label-free)", "best current (realized + estimated)"} <= set(names)
    note = browser.find_element(By.ID, "classes-calibration-note").text
    assert "calibration" in note
    assert_clean(browser, live, "/classes best recall")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script(HIDE_DEV_TOOLS)
    # the page with the two figures above the card folded away (an element screenshot would
    # leave Chromium's viewport emulation changed for the next tests of this browser session)
    browser.execute_script("['classes-over-time', 'classes-detail'].forEach("
                           "id => document.getElementById(id).closest('.card').style.display = 'none')")
    browser.save_screenshot(str(SCREENSHOTS / "classes-best.png"))
