"""The dashboard in real headless Chromium on a seeded database.

Every page loads without console or callback errors (screenshots go to $MONITOR_SCREENSHOTS, e.g. docs/screenshots/),
a filter change redraws the figures and is kept in the URL, a shared URL restores the
filters, an acknowledgement survives a reload, new data shows up without a reload, and a
hostile segment value is shown as text, never run.
"""

from __future__ import annotations

from typing import Any

import dash
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from monitor.config import load_config
from monitor.store.db import make_engine
from tests.dashboards.seeding import AS_OF, HOSTILE
from tests.e2e.conftest import SCREENSHOTS, LiveApp, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]

# What each page shows once its callbacks have run on seeded data.
READY = {
    "/": "#overview-cards .model-card .main-svg",
    "/classes": "#classes-over-time .scatterlayer .trace",
    "/subgroups": "#subgroups-worst-table tbody tr",
    "/alerts": "#alerts-history-table tbody tr",
    "/data": "#data-files-table tbody tr",
}
SCREENSHOT_NAMES = {"/": "overview", "/classes": "classes", "/subgroups": "subgroups",
                    "/alerts": "alerts", "/data": "data"}
# Queries that make the screenshots show the injected fault (region south, class critical).
SCREENSHOT_QUERY = {"/subgroups": "?segment=region", "/alerts": "?model=triage"}
OPTION = "//*[contains(concat(' ', normalize-space(@class), ' '), ' dash-dropdown-option ')]"
HIDE_DEV_TOOLS = ("document.querySelectorAll('.dash-debug-menu__outer, .dash-debug-menu')"
                  ".forEach(e => e.style.display = 'none')")


def console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def front_end_errors(browser: Any) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".dash-fe-error__title")]


def settled(browser: Any) -> bool:
    """No callback in flight (Dash marks loading components with data-dash-is-loading)."""
    return not browser.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']")


def open_page(browser: Any, live: LiveApp, path: str, ready: str | None = None) -> None:
    browser.get(live.url + path)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ready or "#filter-model"),
               message=f"{path} to render {ready}")
    wait_until(lambda: settled(browser), message=f"{path} callbacks to finish")


def assert_clean(browser: Any, live: LiveApp, where: str) -> None:
    errors = console_errors(browser) + front_end_errors(browser) + live.server_errors
    assert not errors, f"{where}: {errors}"


def choose(browser: Any, dropdown_id: str, option_text: str) -> None:
    """Pick an option of a Dash 4 dropdown the way a user does: open it, click the option."""
    browser.find_element(By.ID, dropdown_id).click()
    xpath = f"{OPTION}[.//span[normalize-space(text())='{option_text}']]"
    wait_until(lambda: browser.find_element(By.XPATH, xpath), message=f"option {option_text}").click()
    dropdown = browser.find_element(By.ID, dropdown_id)
    if dropdown.get_attribute("aria-expanded") == "true":
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait_until(lambda: dropdown.get_attribute("aria-expanded") != "true", message=f"{dropdown_id} to close")
    wait_until(lambda: option_text in dropdown.text, message=f"{dropdown_id} to show {option_text}")


def test_every_page_loads_without_errors_and_is_screenshotted(browser: Any, serve_dashboard: Any,
                                                             seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    paths = [page["relative_path"] for page in dash.page_registry.values()]
    assert set(READY) <= set(paths)
    for path in paths:
        open_page(browser, live, path + SCREENSHOT_QUERY.get(path, ""), READY.get(path))
        assert "Error" not in browser.title
        assert_clean(browser, live, path)
        if path in SCREENSHOT_NAMES:
            browser.execute_script(HIDE_DEV_TOOLS)
            browser.save_screenshot(str(SCREENSHOTS / f"{SCREENSHOT_NAMES[path]}.png"))
    # the URL carries the filters (shareable)
    assert "model=triage" in browser.current_url and "class=critical" in browser.current_url


def test_changing_a_filter_updates_the_figures_and_the_url(browser: Any, serve_dashboard: Any,
                                                           seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    open_page(browser, live, "/classes", READY["/classes"])
    title = "#classes-detail .gtitle"
    wait_until(lambda: "Class critical" in browser.find_element(By.CSS_SELECTOR, title).text,
               message="detail title for critical")
    choose(browser, "filter-class", "urgent")
    wait_until(lambda: "Class urgent" in browser.find_element(By.CSS_SELECTOR, title).text,
               message="detail title to follow the class filter")
    wait_until(lambda: "class=urgent" in browser.current_url, message="URL to carry class=urgent")
    choose(browser, "filter-window", "30d")
    wait_until(lambda: "rolling 30d" in browser.find_element(By.CSS_SELECTOR, "#classes-over-time .gtitle").text,
               message="over-time figure to follow the window filter")
    assert_clean(browser, live, "/classes after filter changes")


def test_a_shared_url_restores_the_filters(browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    open_page(browser, live, "/subgroups?model=triage&window=30d&class=urgent&segment=age_band",
              READY["/subgroups"])
    heading = "#subgroups-heatmap .gtitle"
    wait_until(lambda: "by age_band" in browser.find_element(By.CSS_SELECTOR, heading).text
               and "30d" in browser.find_element(By.CSS_SELECTOR, heading).text,
               message="heatmap for age_band, 30d")
    assert "urgent" in browser.find_element(By.ID, "filter-class").text
    assert "segment=age_band" in browser.current_url
    assert_clean(browser, live, "/subgroups from a shared URL")


def test_acknowledging_an_alert_survives_a_reload(browser: Any, serve_dashboard: Any,
                                                  writable_seeded: Any) -> None:
    live = serve_dashboard(writable_seeded.config_path)
    open_page(browser, live, "/alerts", READY["/alerts"])
    choice = browser.find_element(By.ID, "alerts-choice")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", choice)  # under a long table
    choice.click()
    option = wait_until(lambda: browser.find_element(
        By.XPATH, f"{OPTION}[.//span[contains(text(), 'firing')]]"),
        message="a firing alert to choose")
    option.click()
    browser.find_element(By.ID, "alerts-by").send_keys("carol")
    browser.find_element(By.ID, "alerts-ack").click()
    wait_until(lambda: "acknowledged by carol" in browser.find_element(By.ID, "alerts-outcome").text,
               message="acknowledgement confirmation")
    browser.refresh()
    wait_until(lambda: "carol" in browser.find_element(By.ID, "alerts-history-table").text,
               message="acknowledgement after reload")
    assert_clean(browser, live, "/alerts after acknowledging")


def test_new_data_appears_without_a_reload(browser: Any, serve_dashboard: Any, writable_seeded: Any) -> None:
    from monitor.tick import run_tick

    live = serve_dashboard(writable_seeded.config_path)
    open_page(browser, live, "/data", READY["/data"])
    before = browser.find_element(By.ID, "data-files-table").text
    browser.execute_script("window.__no_reload = 42")
    config = load_config(writable_seeded.config_path)
    engine = make_engine(config.database_url)
    run_tick(engine, config, as_of=AS_OF + 7 * 86400, notify=False)  # a week of late labels
    engine.dispose()
    wait_until(lambda: browser.find_element(By.ID, "data-files-table").text != before,
               timeout=90, message="the files table to update by itself")
    assert browser.execute_script("return window.__no_reload") == 42
    assert_clean(browser, live, "/data after live refresh")


def test_a_hostile_value_is_shown_as_text(browser: Any, serve_dashboard: Any, seeded_sqlite: Any) -> None:
    live = serve_dashboard(seeded_sqlite.config_path)
    open_page(browser, live, "/data", "#data-rejects-table tbody tr")
    wait_until(lambda: HOSTILE in browser.find_element(By.ID, "data-rejects-table").text,
               message="the hostile value of the rejected row, as text")
    assert browser.execute_script("return window.__xss") is None
    assert_clean(browser, live, "/data with a hostile value")


def test_every_page_loads_cleanly_on_an_empty_database(browser: Any, serve_dashboard: Any, sqlite_url: str,
                                                       tmp_path: Any) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{sqlite_url}"\n[[models]]\nname = "fresh"\n'
                      'classes = ["a", "b", "c"]\nsegments = ["region"]\n', encoding="utf-8")
    live = serve_dashboard(config)
    for path in READY:
        open_page(browser, live, path, ".empty-state")
        assert_clean(browser, live, f"{path} on an empty database")
    open_page(browser, live, "/classes", ".empty-state")
    wait_until(lambda: "No predictions ingested yet" in browser.find_element(By.ID, "classes-message").text,
               message="the empty state of the Classes page")
