"""A fairness alert rule (`metric = "fairness"`) in the alert lifecycle: the seeded subgroup
gap fires for that group only, and nothing fires without a fault."""

from __future__ import annotations

from monitor.alerts.engine import evaluate
from monitor.alerts.service import alerts_frame
from monitor.config import parse_config
from monitor.context import load_context
from monitor.simulate import Fault, Scenario, simulate, visible
from monitor.store.db import make_engine
from monitor.timeutil import parse_time
from tests.fairness.helpers import raw_rows, store_counts

SEGMENTS = ["sex", "age_band", "region"]


def _run(url: str, faults: list[Fault], min_support: int = 30):  # type: ignore[no-untyped-def]
    config = parse_config({"database_url": url, "models": [{
        "name": "triage", "classes": ["routine", "urgent", "critical"],
        "minority_classes": ["critical"], "segments": SEGMENTS,
        "alerts": [{"name": "recall-gap", "metric": "fairness", "classes": "minority",
                    "segments": ["region", "sex"], "window": "5d", "step": "1d",
                    "min_support": min_support, "fairness_metric": "tpr"}],
    }]})
    data = simulate(Scenario(days=12, rows_per_day=3000, faults=faults), seed=21)
    raw = raw_rows(*visible(data, "2024-02-01"), SEGMENTS)
    engine = make_engine(url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.model("triage"))
        store_counts(conn, ctx.model_id, raw, SEGMENTS)
    with engine.begin() as conn:
        evaluate(conn, config, ctx, parse_time("2024-01-13"))
    with engine.connect() as conn:
        alerts = alerts_frame(conn, model="triage", state="all")
    engine.dispose()
    return alerts


def test_the_seeded_recall_gap_fires_a_fairness_alert_for_that_group(sqlite_url):
    alerts = _run(sqlite_url, [Fault(start_day=4)])
    firing = alerts[alerts["state"] == "firing"]
    assert len(firing) == 1
    alert = firing.iloc[0]
    assert (alert["rule"], alert["class"], alert["segment"], alert["segment_value"]) == (
        "recall-gap", "critical", "region", "south")
    assert alert["value"] < 0.8 * alert["reference_value"]
    assert alert["support"] >= 30


def test_no_fairness_alert_without_a_fault(sqlite_url):
    alerts = _run(sqlite_url, [])
    assert alerts[alerts["state"].isin(["firing", "pending"])].empty


def test_a_flagged_group_under_min_support_still_fires(sqlite_url):
    """The fairness flag under min_support already needs a far stricter interval (99.999%), so
    the rule trusts it: a proven gap is never 'insufficient data' (issue 14)."""
    alerts = _run(sqlite_url, [Fault(start_day=4)], min_support=100_000)
    firing = alerts[alerts["state"] == "firing"]
    assert list(zip(firing["segment"], firing["segment_value"], strict=True)) == [("region", "south")]
    assert (firing["support"] < 100_000).all()
