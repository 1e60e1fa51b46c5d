"""An error inside an alert source reaches the tick instead of switching the rule off.

The broken input is a real one: a drift rule whose window is not a multiple of the drift
bucket (histograms are kept per day), which the drift service refuses. Before issue 16 the
engine logged "rule skipped" and carried on, so the rule never alerted and nothing failed."""

from __future__ import annotations

import pytest

from monitor.alerts.engine import evaluate
from monitor.config import parse_config
from monitor.store.db import make_engine
from tests.drift.helpers import load
from tests.drift.test_drift_values import START


def test_an_error_in_a_source_propagates_out_of_evaluate(sqlite_url: str) -> None:
    config = parse_config({"database_url": sqlite_url, "models": [{
        "name": "m", "classes": ["a", "b", "c"], "segments": ["region"], "features": ["size"],
        "alerts": [{"name": "shift", "metric": "drift", "window": "12h", "step": "12h"}]}]})
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load(conn, config.models[0], None, [])
        with pytest.raises(ValueError, match="drift histograms are kept per 1d"):
            evaluate(conn, config, ctx, START + 10 * 86400)
