"""After hostile files went in, every dashboard page still shows the model, in a real headless
Chromium: no callback or console error, the model card on the Overview, no "unavailable"."""

from __future__ import annotations

from typing import Any

import dash
import pytest
from selenium.webdriver.common.by import By

from tests.e2e.conftest import browser, serve_dashboard, wait_until  # noqa: F401 - fixtures
from tests.e2e.test_dashboard import assert_clean, settled
from tests.hostile.test_files import CSV_HOSTILE, HEADER, _interleave
from tests.hostile.test_timestamps import HOSTILE_TIMES, _with_times
from tests.hostile.workspace import csv_lines, good_rows, jsonl_lines, tick, workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium")]


def test_every_page_still_shows_a_model_fed_hostile_files(browser: Any, serve_dashboard: Any,  # noqa: F811
                                                          tmp_path, sqlite_url) -> None:
    config_path = workspace(tmp_path, sqlite_url)
    good = good_rows(60)
    body, _ = _interleave([line.encode() for line in csv_lines(good.iloc[:30])], list(CSV_HOSTILE.values()))
    (tmp_path / "predictions" / "p.csv").write_bytes(HEADER.encode() + b"\n" + body)
    rest = good.iloc[30:]
    times = _with_times(rest, list(HOSTILE_TIMES), "t")
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(jsonl_lines(rest) + jsonl_lines(times)) + "\n")
    summary = tick(config_path)
    assert summary.models[0].predictions == 60
    live = serve_dashboard(config_path)
    for path in [page["relative_path"] for page in dash.page_registry.values()]:
        browser.get(live.url + path + "?model=m")
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#filter-model"), message=f"{path} to render")
        wait_until(lambda: settled(browser), message=f"{path} callbacks to finish")
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "unavailable" not in text.lower(), f"{path}: {text[:500]}"
        assert_clean(browser, live, path)
        if path == "/":
            wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#overview-cards .model-card"),
                       message="the model card on the Overview")


def test_the_subgroup_heatmap_of_predictions_without_labels_is_an_empty_state() -> None:
    """Found by the test above: a model with predictions but no label yet made the Subgroups
    page answer 500 (the heatmap indexed the first class of an empty pivot)."""
    import pandas as pd

    from dashboards.figures.core import segment_heatmap
    from dashboards.figures.style import is_empty

    latest = pd.DataFrame({"end": pd.to_datetime(["2024-01-08"] * 2, utc=True), "segment_value": ["g1", "g2"],
                           "class": ["pos", "pos"], "recall": [float("nan")] * 2, "support": [0, 0],
                           "provisional": [False, False]})
    assert is_empty(segment_heatmap(latest, segment="group", min_support=30))
