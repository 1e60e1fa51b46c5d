"""The whole path on simulated production data: files -> ingest -> metrics -> alerts.

Logs arrive as they would in production (`LiveFeed`: labels visible from their
label_timestamp, delayed, duplicated, some corrected late), and the real tick runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerts.service import alerts_frame, series_frame
from monitor.simulate import Fault, Scenario
from monitor.timeutil import parse_time
from tests.alerts.simfeed import DAY, LiveFeed

FAULT_DAY = 20
# Stated detection bound: a recall collapse (x0.1) of the rare class in one region of four
# fires within 7 days of faulty data (window end) and 8 days of clock time.
MAX_DATA_DAYS, MAX_CLOCK_DAYS = 7, 8


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_minority_recall_collapse_in_one_region_fires_for_that_region_within_a_week(sqlite_url: str, tmp_path: Path) -> None:
    scenario = Scenario(start="2024-01-01", days=34, rows_per_day=2000, segments=("region",), n_regions=4,
                        faults=[Fault(start_day=FAULT_DAY, segment="region", value="south", cls="critical",
                                      recall_factor=0.1)])
    feed = LiveFeed(scenario, 3, tmp_path, sqlite_url)
    feed.run_days(14, 34)
    with feed.engine.begin() as conn:
        alerts = alerts_frame(conn, model="triage")
    feed.close()
    fault_start = parse_time("2024-01-01") + FAULT_DAY * DAY
    south = alerts[(alerts["segment_value"] == "south") & alerts["fired_at"].notna()]
    assert len(south) == 1, alerts[["segment_value", "state", "started_at", "fired_at"]]
    alert = south.iloc[0]
    assert alert["class"] == "critical" and alert["state"] == "firing" and alert["severity"] == "critical"
    data_days = (parse_time(alert["fired_at"]) - fault_start) / DAY
    clock_days = (parse_time(alert["fired_as_of"]) - fault_start) / DAY
    assert 0 < data_days <= MAX_DATA_DAYS and clock_days <= MAX_CLOCK_DAYS
    healthy = alerts[alerts["segment_value"].isin(["north", "east", "west"])]
    assert healthy.empty, healthy[["segment_value", "started_at", "value", "reference_value"]]
    early = alerts[alerts["started_at"].map(parse_time) <= fault_start]
    assert early.empty


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_stable_stream_of_180_days_with_20_regions_fires_nothing_and_small_regions_are_insufficient(sqlite_url: str, tmp_path: Path) -> None:
    """With `pending_evaluations = 2` (one day later than the default, recommended when many
    subgroups are watched). The default rule (pending 1) raised 1 short-lived warning on the
    largest region over these 3,780 series-days: see docs/alerts.md, "How well it works"."""
    scenario = Scenario(start="2024-01-01", days=180, rows_per_day=1500, segments=("region",), n_regions=20)
    rule = {"name": "minority-recall", "segments": ["region"], "pending_evaluations": 2}
    feed = LiveFeed(scenario, 11, tmp_path, sqlite_url, model_extra={"alerts": [rule]})
    feed.run_days(14, 180, step_days=7)
    with feed.engine.begin() as conn:
        alerts = alerts_frame(conn, model="triage")
        series = series_frame(conn, model="triage")
    feed.close()
    assert alerts.empty, alerts[["segment_value", "state", "started_at", "value", "reference_value", "support"]]
    assert len(series) == 21  # overall + 20 regions, all evaluated
    small = series[series["segment_value"].isin(["region_18", "region_19"])]
    assert set(small["status"]) == {"insufficient_data"}
    assert series.loc[series["segment"] == "*", "status"].tolist() == ["ok"]
