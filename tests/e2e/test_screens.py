"""Issue 14's screens in a real headless Chromium on the seeded database: a zoom and a hidden
legend entry survive the live refresh, each page shows only the filters it reads, the drift
page's controls live in the URL, and a 390-pixel screen gets a collapsed navbar and figures
whose legends stay clear of their titles (screenshots `narrow-*.png` in $MONITOR_SCREENSHOTS)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By

from dashboards.layout import FILTERS
from monitor.config import load_config
from monitor.store.db import make_engine
from tests.dashboards.seeding import AS_OF
from tests.e2e.conftest import SCREENSHOTS, wait_until
from tests.e2e.test_dashboard import HIDE_DEV_TOOLS, READY, assert_clean, choose, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]

GRAPH = "document.querySelector('#classes-over-time .js-plotly-plot')"
# what each page reads (the others are hidden)
SHOWN = {"/": {"window", "range"}, "/classes": {"model", "window", "range", "class"},
         "/alerts": {"model"}, "/data": {"model"}, "/drift": {"model", "window", "range", "segment"},
         "/subgroups": set(FILTERS)}


def x_range(browser: Any) -> list[str]:
    return list(browser.execute_script(f"return {GRAPH}._fullLayout.xaxis.range"))


def supports(browser: Any) -> float:
    """The sum of the support bars drawn: grows when late labels arrive."""
    return float(browser.execute_script(
        f"return {GRAPH}._fullData.filter(t => t.type === 'bar')"
        ".reduce((s, t) => s + Array.from(t.y).reduce((a, b) => a + b, 0), 0)"))


def visibility(browser: Any, name: str) -> Any:
    return browser.execute_script(f"return {GRAPH}._fullData.find(t => t.name === arguments[0]).visible", name)


def test_a_zoom_and_a_hidden_legend_entry_survive_the_live_refresh(browser: Any, serve_dashboard: Any,
                                                                   writable_seeded: Any) -> None:
    from monitor.tick import run_tick

    live = serve_dashboard(writable_seeded.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/classes", READY["/classes"])
    drag = browser.find_element(By.CSS_SELECTOR, "#classes-over-time .nsewdrag")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", drag)
    box = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                 "return [r.left, r.top, r.width, r.height]", drag)
    before = x_range(browser)
    actions = ActionBuilder(browser)  # a user's drag across the plot: zoom into the x axis
    x, y = int(box[0] + box[2] * 0.3), int(box[1] + box[3] * 0.5)
    actions.pointer_action.move_to_location(x, y).pointer_down().move_to_location(x + int(box[2] * 0.3), y + 2) \
        .pointer_up()
    actions.perform()
    wait_until(lambda: x_range(browser) != before, message="the drag to zoom the x axis")
    zoomed = x_range(browser)
    legend = browser.find_element(By.XPATH, "//*[@id='classes-over-time']//*[contains(@class, 'legendtext')]"
                                            "[normalize-space(text())='routine']")
    legend.find_element(By.XPATH, "./parent::*/*[contains(@class, 'legendtoggle')]").click()  # hide a class
    wait_until(lambda: visibility(browser, "routine") == "legendonly", message="routine hidden")
    drawn = supports(browser)
    config = load_config(writable_seeded.config_path)
    engine = make_engine(config.database_url)
    run_tick(engine, config, as_of=AS_OF + 7 * 86400, notify=False)  # a week of late labels
    engine.dispose()
    wait_until(lambda: supports(browser) != drawn, timeout=90, message="the live refresh to redraw")
    assert x_range(browser) == zoomed
    assert visibility(browser, "routine") == "legendonly"
    assert_clean(browser, live, "/classes after a live refresh")


def test_each_page_shows_only_the_filters_it_reads(browser: Any, serve_dashboard: Any,
                                                   seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    for path, shown in SHOWN.items():
        open_page(browser, live, path, READY.get(path))
        visible = {name for name in FILTERS
                   if browser.find_element(By.ID, f"filter-col-{name}").is_displayed()}
        assert visible == shown, path
    assert_clean(browser, live, "filters per page")


def test_unknown_pages_answer_404_with_the_shell(browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    assert requests.get(live.url + "/no-such-page", timeout=30).status_code == 404
    assert requests.get(live.url + "/classes/", timeout=30).status_code == 200
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/no-such-page", "#navbar-collapse")
    wait_until(lambda: not browser.find_element(By.ID, "filter-bar").is_displayed(),
               message="no filters on an unknown page")
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert all("404" in message for message in errors), errors  # the page's own status, nothing else


def test_the_drift_controls_are_kept_in_the_url(browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/drift?method=psi&feature=num_1", "#drift-ranking .main-svg")
    title = "#drift-ranking .gtitle"
    wait_until(lambda: "(psi," in browser.find_element(By.CSS_SELECTOR, title).text, message="psi from the URL")
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, "#drift-distribution .gtitle").text
               .startswith("num_1"), message="the feature from the URL")
    choose(browser, "drift-feature", "score of critical")  # a pseudo-feature, by its display name
    wait_until(lambda: "feature=__score_critical__" in browser.current_url, message="the feature in the URL")
    assert "method=psi" in browser.current_url and "model=triage" in browser.current_url
    assert_clean(browser, live, "/drift with controls in the URL")


def overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_a_narrow_screen_collapses_the_navbar_and_keeps_legends_off_titles(
        browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.set_window_size(390, 844)
        # the last page is not /alerts: the menu is opened there below and navigates to /alerts
        for path, name, ready in (("/", "overview", "#overview-cards .overview-incidents .incident-cause"),
                                  ("/classes", "classes", "#classes-over-time .main-svg"),
                                  ("/alerts?model=triage", "alerts", "#alerts-incident-list .incident-cause"),
                                  ("/subgroups?segment=region", "subgroups", "#subgroups-heatmap .main-svg"),
                                  ("/drift", "drift", "#drift-ranking .main-svg")):
            open_page(browser, live, path, ready)
            assert not browser.find_element(By.ID, "nav-alerts").is_displayed()  # collapsed
            for graph in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"):
                titles = graph.find_elements(By.CSS_SELECTOR, ".gtitle")
                legends = graph.find_elements(By.CSS_SELECTOR, ".legend")
                if titles and legends:
                    assert not overlaps(titles[0].rect, legends[0].rect), f"{path}: {titles[0].text}"
            browser.execute_script(HIDE_DEV_TOOLS)
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(390, min(height + 120, 4000))
            browser.save_screenshot(str(SCREENSHOTS / f"narrow-{name}.png"))
            browser.set_window_size(390, 844)
        browser.find_element(By.ID, "navbar-toggler").click()
        wait_until(lambda: browser.find_element(By.ID, "nav-alerts").is_displayed(), message="the menu to open")
        browser.find_element(By.ID, "nav-alerts").click()
        wait_until(lambda: browser.current_url.split("?")[0].endswith("/alerts"), message="navigation")
        wait_until(lambda: not browser.find_element(By.ID, "nav-alerts").is_displayed(),
                   message="the menu to close after navigating")
        assert_clean(browser, live, "narrow screen")
    finally:
        browser.set_window_size(1400, 1000)


def test_the_fairness_metric_is_kept_in_the_url(browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    browser.set_window_size(1400, 1000)
    open_page(browser, live, "/fairness?metric=fpr", "#fairness-gap .main-svg")
    wait_until(lambda: "false positive rate" in browser.find_element(By.CSS_SELECTOR, "#fairness-gap .gtitle").text,
               message="fpr from the URL")
    choose(browser, "fairness-metric", "precision: predictive parity")
    wait_until(lambda: "metric=precision" in browser.current_url, message="the metric in the URL")
    assert "model=triage" in browser.current_url
    assert_clean(browser, live, "/fairness with its metric in the URL")
