"""An error inside an alert rule is reported, never a silent skip, and never silences the
model's other rules.

Before issue 16 the engine logged "rule skipped" and carried on, so the broken rule never
alerted and nothing failed. A drift rule whose window is not a multiple of the drift bucket
is now refused by the config; a rule that still fails at run time (here the same rule,
changed after validation, which the drift service refuses) raises out of `evaluate` when
nobody collects errors, and in the tick fails the run with the rule's name while the recall
rule beside it is evaluated as usual.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.alerts.engine import evaluate
from monitor.alerts.models import AlertSeries
from monitor.config import ConfigError, load_config, parse_config
from monitor.context import load_context
from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import IngestRun
from monitor.tick import run_tick
from monitor.timeutil import parse_time

DRIFT_12H = {"name": "shift", "metric": "drift", "window": "12h", "step": "12h"}


def test_a_drift_rule_off_the_drift_bucket_is_a_config_error() -> None:
    with pytest.raises((ConfigError, ValueError), match="drift histograms are kept per 1d"):
        parse_config({"models": [{"name": "m", "classes": ["a", "b"], "features": ["size"],
                                  "alerts": [DRIFT_12H]}]})


def _workspace(tmp_path: Path, database_url: str):
    scenario = Scenario(start="2024-01-01", days=10, rows_per_day=300, segments=("region",), n_regions=2)
    data = simulate(scenario, seed=5)
    write_logs(data, tmp_path)
    recall = {"name": "recall_drop", "metric": "recall"}
    drift = {"name": "shift", "metric": "drift", "window": "1d", "step": "1d"}
    write_config(tmp_path, scenario, database_url=database_url, model_extra={"alerts": [recall, drift]})
    config = load_config(tmp_path / "monitor.toml")
    config.database_url = database_url
    # the drift rule turns bad after validation (as a future bug would): the service refuses it
    shift = next(rule for rule in config.models[0].alerts if rule.name == "shift")
    shift.window = shift.step = "12h"
    engine = make_engine(database_url)
    upgrade(engine)
    return config, engine, parse_time("2024-01-11")


def test_evaluate_raises_when_nobody_collects_errors(sqlite_url: str, tmp_path: Path) -> None:
    config, engine, as_of = _workspace(tmp_path, sqlite_url)
    run_tick(engine, config, as_of=as_of, notify=False)  # ingests; the failing rule is reported
    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
        with pytest.raises(ValueError, match="drift histograms are kept per 1d"):
            evaluate(conn, config, ctx, as_of)
    engine.dispose()


def test_a_failing_rule_fails_the_tick_by_name_and_the_other_rules_still_run(db_url: str, tmp_path: Path) -> None:
    config, engine, as_of = _workspace(tmp_path, db_url)
    summary = run_tick(engine, config, as_of=as_of, notify=False)
    errors = summary.models[0].errors
    assert any("alert rule 'shift'" in e and "drift histograms are kept per 1d" in e for e in errors), errors
    with engine.begin() as conn:
        run = conn.execute(select(IngestRun.status, IngestRun.error).order_by(IngestRun.id.desc())).first()
        rules = set(conn.execute(select(AlertSeries.rule)).scalars())
    engine.dispose()
    assert run is not None and run.status == "failed" and "shift" in (run.error or "")
    assert summary.models[0].predictions > 0  # the data went in all the same
    assert rules == {"recall_drop"}  # the recall rule was evaluated beside the broken one
