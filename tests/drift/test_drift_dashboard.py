"""The Drift page's data functions and figures on a seeded database, and its callbacks in the
real app (dashboards.app.create_app)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from dashboards.data import drift as data
from dashboards.figures import drift as figures
from dashboards.figures.style import is_empty
from dashboards.filters import Filters
from monitor.config import parse_config
from monitor.store.db import make_engine
from tests.dashboards.helpers import page, running_app
from tests.drift.helpers import ingest
from tests.drift.test_drift_behaviour import COLORS, days
from tests.drift.test_drift_values import log_frame


@pytest.fixture
def seeded(sqlite_url):
    rng = np.random.default_rng(2)
    reference = log_frame(rng, 4000, day=-30, cat_probs=COLORS).drop(columns=["timestamp"])
    batches = days(rng, 10, 600, shifted_from=7)
    config = parse_config({"database_url": sqlite_url, "models": [{
        "name": "m", "classes": ["a", "b", "c"], "segments": ["region"], "features": ["color", "size"]}]})
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ingest(conn, config.models[0], reference, batches)
    engine.dispose()
    return config, reference, batches


def test_features_are_ranked_by_drift_with_every_method_counted(seeded):
    config, _, _ = seeded
    with running_app(config):
        result = data.drift_records(Filters(model="m", window="1d"))
    assert not result.empty and result.meta["features"][:2] == ["color", "size"]
    ranked = data.rank_features(data.series(result.frame, "*", "*"), "js")
    assert list(ranked.columns) == ["feature", "value", "threshold", "drifted", "methods_drifted", "n_current", "end"]
    assert ranked["value"].is_monotonic_decreasing
    assert set(ranked.loc[ranked.drifted, "feature"]) >= {"color", "size"}
    assert ranked.set_index("feature").loc["size", "methods_drifted"] == 4


def test_the_distribution_of_a_feature_matches_the_raw_rows(seeded):
    config, reference, batches = seeded
    with running_app(config):
        result = data.distribution(Filters(model="m", window="1d", segment="region"), "color", "south")
    last = batches[-1]
    last, ref = last[last.region == "south"], reference[reference.region == "south"]
    frame = result.frame.set_index("bin")
    for colour in COLORS:
        assert frame.loc[colour, "current_n"] == (last.color == colour).sum()
        assert frame.loc[colour, "reference_n"] == (ref.color == colour).sum()
    assert jensenshannon(frame["reference_n"], frame["current_n"], base=2) == pytest.approx(
        jensenshannon(ref.color.value_counts().reindex(list(COLORS)), last.color.value_counts().reindex(list(COLORS)),
                      base=2))


def test_figures_have_titles_units_and_empty_states():
    ranked = pd.DataFrame({"feature": ["size", "color"], "value": [0.3, 0.05], "threshold": [0.1, 0.1],
                           "drifted": [True, False], "methods_drifted": [4, 0], "n_current": [600, 600],
                           "end": pd.to_datetime(["2024-01-10", "2024-01-10"], utc=True)})
    figure = figures.ranking_figure(ranked, method="js", window="1d")
    assert "Drift by feature" in figure.layout.title.text and "Jensen-Shannon" in figure.layout.xaxis.title.text
    assert list(figure.data[0].marker.color) == [figures.PALETTE[0], figures.BAD]  # drawn bottom-up
    assert is_empty(figures.ranking_figure(ranked.iloc[0:0], method="js", window="1d"))
    assert is_empty(figures.sparklines_figure(pd.DataFrame(columns=["method", "feature"]), method="ks",
                                              features=["size"], window="7d"))
    dist = pd.DataFrame({"bin": ["a", "b"], "reference_n": [5, 5], "current_n": [9, 1],
                         "reference_share": [0.5, 0.5], "current_share": [0.9, 0.1]})
    bars = figures.distribution_figure(dist, feature="color", window="1d", end=None)
    assert bars.layout.yaxis.title.text == "share of rows (%)" and list(bars.data[1].y) == [90.0, 10.0]
    assert is_empty(figures.distribution_figure(dist.iloc[0:0], feature="color", window="1d", end=None))


def test_the_page_callbacks_draw_the_seeded_drift(seeded):
    config, _, _ = seeded
    with running_app(config):
        drift_page = page("drift")
        ranking, lines, options, feature, values, message = drift_page.update_drift(
            None, "m", "1d", None, None, "region", "js", "south", None)
        assert message is None and not is_empty(ranking) and not is_empty(lines)
        assert {"label": "south", "value": "south"} in values and feature in {o["value"] for o in options}
        assert "region = south" in ranking.layout.title.text
        distribution = drift_page.update_distribution(None, "m", "1d", None, None, "region", "size", "south")
        assert not is_empty(distribution)
        missing = drift_page.update_drift(None, "nope", "1d", None, None, "*", "js", "*", None)
        assert is_empty(missing[0]) and missing[5] is not None
