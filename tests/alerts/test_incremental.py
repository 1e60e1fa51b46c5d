"""A tick's alert evaluation reads what it needs, and an extra hour agrees with a fresh start.

Issue 15: an hourly tick must not cost more as history grows. The rate rules read the
realized counts only (`metrics_frame(estimates=False)`: the label-free estimate is skipped),
so these tests check that (1) the records the rules read are those of the full
`metrics_frame`, column for column, where the estimate exists, and (2) after a history and
one more hour of data, the alerts and events are those of one evaluation of the whole
history at the same clock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from monitor.alerts.models import Alert, AlertEvent
from monitor.alerts.rules import default_rule, segment_option
from monitor.context import load_context
from monitor.metrics.service import metrics_frame
from monitor.simulate import Fault, Scenario
from monitor.store.windows import WindowSpec
from tests.alerts.simfeed import DAY, LiveFeed
from tests.conftest import fresh_database_url

HOUR = 3600
ESTIMATE_COLUMNS = ["recall_estimated", "recall_estimated_low", "recall_estimated_high", "estimation_warning",
                    "recall_best", "recall_best_low", "recall_best_high", "calibration", "calibration_id",
                    "calibration_fit_start", "calibration_fit_end", "calibration_labels"]


def _scenario() -> Scenario:
    # the overall recall of the rare class collapses from day 6: a sure breach the rules fire on
    return Scenario(start="2024-01-01", days=14, rows_per_day=500, segments=("region",), n_regions=2,
                    label_delay_median_hours=6,
                    faults=[Fault(start_day=6, segment=None, value=None, cls="critical", recall_factor=0.0)])


def _alerts(feed: LiveFeed) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with feed.engine.connect() as conn:
        alerts = conn.execute(select(Alert.fingerprint, Alert.state, Alert.severity, Alert.started_at,
                                     Alert.fired_at, Alert.resolved_at)).all()
        events = conn.execute(select(Alert.fingerprint, AlertEvent.kind, AlertEvent.data_time)
                              .join(Alert, Alert.id == AlertEvent.alert_id)).all()
    return sorted(tuple(row) for row in alerts), sorted(tuple(row) for row in events)


@pytest.mark.timeout(300)
def test_the_rules_read_the_realized_records_of_the_full_metrics_frame(db_url: str, tmp_path: Path) -> None:
    scenario = _scenario()
    feed = LiveFeed(scenario, 5, tmp_path, db_url)
    as_of = feed.start + 12 * DAY + HOUR
    feed.tick(as_of)
    rule = default_rule()
    spec = WindowSpec(7 * DAY, DAY, feed.start + 7 * DAY, feed.start + 12 * DAY)
    with feed.engine.connect() as conn:
        ctx = load_context(conn, feed.config.models[0])
        full = metrics_frame(conn, ctx, spec, classes=list(ctx.minority_classes), segment=segment_option(rule),
                             as_of=as_of)
        lean = metrics_frame(conn, ctx, spec, classes=list(ctx.minority_classes), segment=segment_option(rule),
                             as_of=as_of, estimates=False)
    feed.close()
    assert len(full) > 10 and full["recall_estimated"].notna().any()  # the estimate exists here
    assert list(lean.columns) == list(full.columns)
    realized = [c for c in full.columns if c not in ESTIMATE_COLUMNS]
    pd.testing.assert_frame_equal(lean[realized], full[realized])
    assert lean["recall_estimated"].isna().all() and lean["estimation_warning"].isna().all()
    assert lean["calibration"].isna().all() and full["calibration"].notna().any()
    np.testing.assert_array_equal(lean["recall_best"].to_numpy(float), lean["recall"].to_numpy(float))


@pytest.mark.timeout(300)
def test_an_extra_hour_gives_the_alerts_and_events_of_one_evaluation_of_the_whole_history(
        db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    scenario = _scenario()
    stepwise = LiveFeed(scenario, 5, tmp_path / "stepwise", db_url)
    clock = stepwise.start + 12 * DAY
    stepwise.tick(clock)
    stepwise.tick(clock + HOUR)
    ticked = _alerts(stepwise)
    stepwise.close()
    # the same data in a fresh database of the same backend, evaluated once at the same clock
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    other_url = fresh_database_url(backend, request, tmp_path)
    whole = LiveFeed(scenario, 5, tmp_path / "whole", other_url)
    whole.tick(clock + HOUR)
    once = _alerts(whole)
    whole.close()
    alerts, events = ticked
    assert any(state == "firing" for _, state, *_ in alerts), alerts  # the collapse fired
    assert (alerts, events) == once


@pytest.mark.timeout(300)
def test_the_kept_reference_is_read_again_when_a_new_reference_file_is_loaded(sqlite_url: str, tmp_path: Path) -> None:
    from monitor.alerts import sources

    scenario = Scenario(start="2024-01-01", days=3, rows_per_day=200, segments=("region",), n_regions=2)
    feed = LiveFeed(scenario, 5, tmp_path, sqlite_url)
    feed.tick(feed.start + DAY)
    rule, rate = default_rule(), sources._rate("recall")

    def reference() -> pd.DataFrame:
        with feed.engine.connect() as conn:
            return sources._reference(conn, load_context(conn, feed.config.models[0]), rule, rate)

    first = reference()
    pd.testing.assert_frame_equal(reference(), first)  # kept: the same counts
    half = feed.data.reference.iloc[: len(feed.data.reference) // 2]
    half.to_parquet(tmp_path / "reference.parquet", index=False)
    feed.tick(feed.start + 2 * DAY)  # the tick loads the new reference file
    second = reference()
    sources.REFERENCE_CACHE.clear()
    fresh = reference()
    feed.close()
    pd.testing.assert_frame_equal(second, fresh)
    assert second["ref_support"].sum() < first["ref_support"].sum()
