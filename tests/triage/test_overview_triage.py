"""The Overview answers "what is wrong?" and its judgments follow the evidence (issue 14).

- On the seeded fault (critical recall collapses in region south) the Overview names the
  slice, class critical, without any filter change, each finding linked to its evidence.
- A year of 2013 logs ingested today: no alert was evaluated (every window is older than the
  look-back), yet the newest window's interval proves the drop: the badge is red, and the
  Alerts page says why there are no alerts and points to `monitor backtest` / `--as-of`.
- Logs running up to the clock: the window ending after the clock is partial (provisional)
  and never the newest one the Overview or a default view judges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dashboards.data import alerts as alert_data
from dashboards.data import core
from dashboards.filters import Filters
from monitor.config import load_config
from monitor.read import quality, windows
from monitor.read.context import stored_context
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.timeutil import now_epoch, parse_time
from tests.dashboards.helpers import page, running_app, text_of
from tests.dashboards.seeding import Seeded
from tests.triage.workspaces import DAY, up_to_now


def test_overview_names_the_faulty_slice_first_with_links_to_its_evidence(seeded_sqlite: Seeded) -> None:
    with running_app(seeded_sqlite.config_path):
        health = core.overview(Filters(window="7d"))[0]
        cards = page("overview").update_overview(None, "7d", None, None)
    text = text_of(cards)
    first = health.open_alerts.iloc[0]
    assert (first["class"], first["segment"], first["segment_value"]) == ("critical", "region", "south")
    assert first["href"] == "/subgroups?model=triage&segment=region&class=critical"
    worst = health.worst.iloc[0]
    assert (worst["class"], worst["segment"], worst["segment_value"], worst["proven"]) == \
        ("critical", "region", "south", True)
    assert set(health.worst["segment"]) > {"region"}  # every attribute, not just one
    # the open incident leads, naming the faulty slice; the alerts it explains are not listed again
    assert "Open incidents (1)" in text and "Recall of critical dropped in region=south" in text
    assert "since 2024-01-" in text and text.index("Open incidents") < text.index("Worst slices")
    assert "Recall of critical (7d window ending 2024-01-22)" in text
    assert "Label coverage (7d window ending 2024-01-22)" in text


def test_a_backfilled_year_with_a_proven_drop_and_no_alert_is_red(backfill: Path) -> None:
    with running_app(backfill):
        health = core.overview(Filters(window="7d"))[0]
        cards = page("overview").update_overview(None, "7d", None, None)
        result = alert_data.alerts("triage")
        badge = page("overview").model_badge(health)
    assert health.firing == 0 and health.open_alerts.empty
    assert str(health.end.date()) == "2014-01-01"
    row = health.minority.iloc[0]
    assert row["recall_high"] < row["reference_recall"] - health.min_drop
    assert health.proven_drop and badge.children == "drop proven" and badge.color == "danger"
    assert "drop proven" in text_of(cards) and " ok " not in f" {text_of(cards)} "
    assert result.message is not None and "older than the alert look-back (60d)" in result.message
    assert result.hint is not None and "monitor backtest --model triage --from 2013-01-01" in result.hint
    assert "--as-of" in result.hint


def test_no_alerts_on_recent_data_still_says_no_alerts(seeded_sqlite: Seeded) -> None:
    """The look-back explanation is for stale data only: filtered states keep the plain text."""
    with running_app(seeded_sqlite.config_path):
        result = alert_data.alerts("triage", "pending")
    if result.empty:
        assert result.message == "No pending alerts"


def test_the_window_ending_after_the_clock_is_partial_and_never_the_newest(tmp_path: Path) -> None:
    now = now_epoch() - now_epoch() % 3600
    now = now - now % DAY + 15 * 3600  # mid-afternoon today: the current day is unfinished
    path = up_to_now(tmp_path, now)
    config = load_config(path)
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            ctx = stored_context(conn, config.models[0])
            assert ctx is not None
            spec = windows.default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=90, now=now)
            assert spec is not None and spec.end == now - now % DAY  # today 00:00, not tomorrow
            # "to today" (the filter bar's inclusive date: its bound is tomorrow 00:00)
            chosen = windows.default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=90,
                                          end=now - now % DAY + DAY, now=now)
            assert chosen is not None and chosen.end == spec.end
            frame = quality.metrics(conn, ctx, WindowSpec(7 * DAY, DAY, spec.end - DAY, spec.end + DAY),
                                    segment="*", as_of=now)
    finally:
        engine.dispose()
    ends = frame["end"].map(parse_time).to_numpy()
    assert (ends > now).any()
    np.testing.assert_array_equal(frame["partial"].to_numpy(bool), ends > now)
    assert frame.loc[ends > now, "provisional"].all()
    with running_app(path):
        health = core.overview(Filters(window="7d"))[0]
        trend_ends = health.trend["end"].map(lambda t: int(t.timestamp())).to_numpy()
    assert health.end is not None and int(health.end.timestamp()) <= now_epoch()
    assert (trend_ends <= now_epoch()).all()
