"""The Fairness page's data and figure functions and its callback, on a seeded database.

Seeded with simulated rows whose `critical` recall collapses in region south from day 5;
the counts go to a real SQLite database; expected values come from fairlearn on raw rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards.data import fairness as data
from dashboards.figures import fairness as figures
from dashboards.figures.style import is_empty
from monitor.config import parse_config
from monitor.context import load_context
from monitor.simulate import Fault, Scenario, simulate, visible
from monitor.store.db import make_engine
from monitor.timeutil import parse_time
from tests.dashboards.helpers import page, running_app, text_of
from tests.fairness.helpers import metric_frames, raw_rows, store_counts, window_rows

SEGMENTS = ["sex", "age_band", "region"]
DAY = 86_400


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path):
    import shutil

    directory = tmp_path_factory.mktemp("fairness_dash")
    database = directory / "monitor.db"
    shutil.copy(sqlite_template, database)
    config = parse_config({
        "database_url": f"sqlite:///{database}",
        "models": [{"name": "triage", "classes": ["routine", "urgent", "critical"],
                    "minority_classes": ["critical"], "segments": SEGMENTS,
                    "intersections": True},
                   {"name": "empty", "classes": ["a", "b"], "segments": ["sex"]}],
    }, base_dir=directory)
    scenario = Scenario(days=14, rows_per_day=2500, faults=[Fault(start_day=5)])
    raw = raw_rows(*visible(simulate(scenario, seed=3), "2024-02-01"), SEGMENTS)
    engine = make_engine(config.database_url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.model("triage"))
        store_counts(conn, ctx.model_id, raw, SEGMENTS)
    engine.dispose()
    return config, raw


def test_the_page_shows_the_gap_the_groups_and_ranks_the_faulty_region_worst(seeded):
    config, raw = seeded
    with running_app(config):
        gap, bars, worst, message, options = page("fairness").update_fairness(
            None, "triage", "7d", None, None, "critical", "region", "tpr", None, 0)
    assert message is None and not is_empty(gap) and not is_empty(bars)
    # the tolerance line is drawn, the faulty windows are marked as flagged
    assert any(shape.y0 == 0.8 for shape in gap.layout.shapes)
    assert any(trace.name == "region flagged" for trace in gap.data)
    # bars: the newest window, one bar per region, values equal fairlearn on the raw rows
    newest = pd.Timestamp(options[0]["value"])
    subset = window_rows(raw, int(newest.timestamp()), 7 * DAY)
    _, nullable = metric_frames(subset, "critical", "region")
    bar = bars.data[0]
    got = dict(zip(bar.x, bar.y, strict=True))
    for group, value in nullable.by_group["tpr"].items():
        assert got[group] == pytest.approx(value, rel=1e-12)
    # the reference group is the one of the records (fixed across windows), never "largest"
    assert "reference north" in bars.layout.title.text or "all other groups" in bars.layout.title.text
    # worst groups: intersections first, a south intersection on top, flagged
    text = text_of(worst)
    assert "sex&region" in text or "age_band&region" in text
    first_row = worst.children[1].children[0]
    assert "south" in text_of(first_row) and "yes" in text_of(first_row)


def test_choosing_a_window_end_and_a_metric_changes_the_bars(seeded):
    config, raw = seeded
    with running_app(config):
        callback = page("fairness").update_fairness
        *_, options = callback(None, "triage", "7d", None, None, "critical", "sex", "tpr", None, 0)
        older = options[3]["value"]
        _, bars, *_ = callback(None, "triage", "7d", None, None, "critical", "sex",
                               "selection_rate", older, 0)
    assert pd.Timestamp(older).strftime("%Y-%m-%d") in bars.layout.title.text
    assert "Selection rate by sex" in bars.layout.title.text
    subset = window_rows(raw, parse_time(older), 7 * DAY)
    _, nullable = metric_frames(subset, "critical", "sex")
    got = dict(zip(bars.data[0].x, bars.data[0].y, strict=True))
    for group, value in nullable.by_group["selection_rate"].items():
        assert got[group] == pytest.approx(value, rel=1e-12)


def test_a_model_without_data_gets_empty_states_that_say_what_to_do(seeded):
    config, _ = seeded
    with running_app(config):
        gap, bars, worst, message, options = page("fairness").update_fairness(
            None, "empty", "7d", None, None, None, "*", "tpr", None, 0)
    assert is_empty(gap) and is_empty(bars) and options == []
    assert "monitor ingest" in text_of(worst)


def test_figures_say_why_they_are_empty():
    assert is_empty(figures.gap_over_time(pd.DataFrame(columns=["attribute", "ratio", "supported"])))
    frame = pd.DataFrame(columns=["attribute", "group"])
    assert is_empty(figures.group_bars(frame, attribute="sex"))


def test_worst_ranking_puts_the_clearest_disparity_first_and_shows_small_groups_as_tiny():
    frame = pd.DataFrame({
        "attribute": ["a&b"] * 4, "group": ["x", "y", "z", "ref"],
        "value": [0.2, 0.5, 0.1, 0.7], "low": 0.0, "high": 1.0, "support": [100, 100, 5, 300],
        "reference_group": ["ref", "ref", "ref", "(rest)"], "ratio": [0.29, 0.71, 0.14, 1.0],
        "ratio_low": [0.2, 0.5, 0.01, 0.9], "ratio_high": [0.4, 1.01, 0.9, 1.1],
        "flagged": [True, False, False, False],
    })
    ranked = data.rank_worst(frame, min_support=30)
    # z (ratio 0.14 on 5 cases) is tiny: its interval reaches 0.9, so it ranks by that
    assert list(ranked["group"]) == ["x", "z", "y", "ref"]
    assert ranked["disparity_at_least"].iloc[0] == pytest.approx(2.5)
    assert list(ranked["tiny"]) == [False, True, False, False]
    assert np.isfinite(ranked["disparity_at_least"]).all()


def test_the_largest_gap_is_the_one_the_interval_supports_not_a_tiny_group_at_zero():
    """Issue 14: a group with 2 positives that misses both (ratio 0, interval [0, 0.94]) is not
    the headline; the group whose interval lies furthest below parity is."""
    end = pd.Timestamp("2024-01-08", tz="UTC")
    frame = pd.DataFrame({
        "end": end, "attribute": "region", "group": ["north", "south", "tiny"],
        "value": [0.7, 0.35, 0.0], "support": [300, 120, 2], "reference_group": ["(rest)", "north", "north"],
        "reference_value": [0.6, 0.7, 0.7], "ratio": [1.17, 0.5, 0.0],
        "ratio_low": [1.05, 0.38, 0.0], "ratio_high": [1.3, 0.65, 0.94], "flagged": [False, True, False],
    })
    gaps = data.supported_gaps(frame, min_support=30)
    assert gaps["group"].tolist() == ["south"] and gaps["supported"].iloc[0] == pytest.approx(0.65)
    assert gaps["groups_flagged"].iloc[0] == 1
    figure = figures.gap_over_time(gaps, cls="critical", window="7d")
    assert figure.data[0].y[0] == pytest.approx(0.65)
    assert data.worst_attribute(frame.assign(attribute="region"), ["sex", "region"]) == "region"
    calm = frame.assign(ratio_low=0.9, ratio_high=1.1, flagged=False)
    assert data.worst_attribute(calm, ["sex", "region"]) == "sex"
