"""Issue 14: a proven collapse is never 'insufficient data' on the Subgroups page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboards.data.subgroups import finding_score
from dashboards.figures import core as figures
from monitor.alerts.stats import wilson_interval


def _window() -> pd.DataFrame:
    """The demo's fault: south/critical 0 of 26 against 0.71, beside ordinary slices."""
    rows = [("north", "critical", 60, 80, 0.74), ("east", "critical", 55, 78, 0.72),
            ("south", "critical", 0, 26, 0.71), ("west", "critical", 20, 28, 0.73),
            ("north", "urgent", 300, 400, 0.76)]
    frame = pd.DataFrame(rows, columns=["segment_value", "class", "tp", "support", "reference_recall"])
    low, high = wilson_interval(frame["tp"], frame["support"])
    return frame.assign(end=pd.Timestamp("2024-01-08", tz="UTC"), recall=frame["tp"] / frame["support"],
                        recall_low=low, recall_high=high, provisional=False)


def test_the_proven_collapse_under_min_support_ranks_first_and_is_not_insufficient() -> None:
    ranked = figures.worst_slices(_window(), min_support=30)
    first = ranked.iloc[0]
    assert (first["segment_value"], first["class"]) == ("south", "critical")
    assert first["recall_high"] < 0.14 and first["status"] == "drop proven"
    # west (20 of 28, [0.53, 0.85]) proves nothing: the only slice left as insufficient
    assert ranked.set_index("segment_value").loc["west", "status"] == "insufficient data"
    assert ranked.iloc[-1]["segment_value"] == "west"


def test_the_status_comes_from_the_alert_state_when_the_series_has_one() -> None:
    states = pd.DataFrame({"segment_value": ["south", "north"], "class": ["critical", "critical"],
                           "status": ["firing", "ok"]})
    ranked = figures.worst_slices(_window(), min_support=30, alert_status=states).set_index("segment_value")
    assert ranked.loc["south", "status"] == "alert firing"
    assert sorted(ranked.loc["north", "status"]) == ["alert ok", "ok"]  # urgent has no series


def test_the_heatmap_colours_a_proven_collapse_under_min_support() -> None:
    heat = figures.segment_heatmap(_window(), segment="region", min_support=30, sort_class="critical").data[0]
    rows, columns = list(heat.y), list(heat.x)
    south, west = rows.index("south"), rows.index("west")
    critical = columns.index("critical")
    assert heat.z[south][critical] == 0.0 and "drop proven" in heat.text[south][critical]
    assert np.isnan(heat.z[west][critical]) and "insufficient" in heat.text[west][critical]


def test_an_attribute_with_a_proven_collapse_outscores_one_without() -> None:
    window = _window()
    calm = window[window["segment_value"] != "south"]
    assert finding_score(window, min_support=30, drop=0.1) > finding_score(calm, min_support=30, drop=0.1)


def test_an_interval_below_the_reference_by_less_than_min_drop_is_not_ok() -> None:
    # the demo's sex=F: 0.54 [0.47, 0.60] against 0.70 was listed as "ok" under the proven drops
    frame = pd.DataFrame({"segment_value": ["F", "M"], "class": ["critical", "critical"],
                          "recall": [0.54, 0.69], "recall_low": [0.47, 0.62], "recall_high": [0.60, 0.75],
                          "support": [194, 200], "reference_recall": [0.70, 0.70]})
    ranked = figures.worst_slices(frame, min_support=30, min_drop=0.10).set_index("segment_value")
    assert ranked.loc["F", "status"] == "below reference"
    assert ranked.loc["M", "status"] == "ok"
