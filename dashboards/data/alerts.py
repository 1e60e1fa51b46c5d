"""Data access for the Alerts page: history, evidence, silences, deliveries, user actions.

Reads and writes go through the read layer (`monitor.read.alerts`); the actions
(`acknowledge_alert`, `silence_alert`) run in their own short write transaction and return a
one-line outcome for the page, never raising for user mistakes (unknown id, empty name,
past end time).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Connection

from dashboards.data import common
from dashboards.data.core import Result, context
from monitor.read import alerts as service
from monitor.read import windows
from monitor.timeutil import format_duration, now_epoch, parse_duration, to_iso

STATES = ("all", "firing", "pending", "resolved")
SILENCE_DURATIONS = ("1h", "4h", "1d", "7d")


@dataclass
class Outcome:
    ok: bool
    message: str


def alerts(model: str | None, state: str = "all") -> Result:
    """Alert records (docs/contract.md `alerts` + severity, acknowledged_by, silenced_until, ...)."""
    state = state if state in STATES else "all"
    with common.read() as conn:
        frame = service.alerts(conn, model=model, state=state)
        never = frame.empty and (state == "all" or service.alerts(conn, model=model, limit=1).empty)
        stale = _older_than_lookback(conn, model) if never else []
    result = Result(frame)
    if frame.empty:
        what = "alerts" if state == "all" else f"{state} alerts"
        result.message = f"No {what}"
        result.hint = ("Alerts appear when minority recall drops below the reference "
                       "(rules in [[models.alerts]]; every model has a default rule).")
    if frame.empty and stale:
        name, first, newest, lookback = stale[0]
        result.message = (f"No {what}: the newest data ({newest}) is older than the alert look-back "
                          f"({lookback}), so no rule has evaluated it")
        result.hint = (f"Alerts are evaluated for windows ending within the look-back before the clock. "
                       f"Replay this history's alerts with `monitor backtest --model {name} --from {first} "
                       f"--to {newest}`, or evaluate it at its own time with `monitor ingest --as-of {newest}`.")
    return result


def _older_than_lookback(conn: Connection, model: str | None) -> list[tuple[str, str, str, str]]:
    """(model, first day, newest day, look-back) of each chosen model whose newest data is
    older than its alert look-back (e.g. a year of old logs backfilled today): the rules
    never saw it. Empty when any chosen model has recent data (its silence is real)."""
    config = common.config()
    found = []
    for name in [model] if model else [m.name for m in config.models]:
        ctx = context(conn, config, name)
        span = windows.data_span(conn, ctx) if ctx else None
        if ctx is None or span is None:
            continue
        lookback = max([parse_duration(config.retention.label_horizon),
                        *(parse_duration(rule.lookback) for rule in ctx.config.alerts if rule.lookback)])
        newest = span[1] + ctx.bucket
        if newest >= now_epoch() - lookback:
            return []
        found.append((name, str(to_iso(span[0]))[:10], str(to_iso(newest))[:10], format_duration(lookback)))
    return found


def events(alert_id: int | None) -> Result:
    """The outbox events of one alert (state changes, reminders) with their outcome."""
    if alert_id is None:
        return Result(pd.DataFrame(), "Choose an alert", None)
    with common.read() as conn:
        frame = service.events(conn, int(alert_id))
    return Result(frame, None if len(frame) else "No events for this alert yet")


def silences(model: str | None) -> Result:
    with common.read() as conn:
        frame = service.silences(conn, model)
    return Result(frame, None if len(frame) else "No active silences",
                  None if len(frame) else "Silence an alert below to mute its notifications.")


def deliveries(model: str | None, limit: int = 200) -> Result:
    with common.read() as conn:
        frame = service.deliveries(conn, model, limit=limit)
    return Result(frame, None if len(frame) else "No notifications sent yet",
                  None if len(frame) else "Configure [[channels]] in monitor.toml to be notified.")


def acknowledge_alert(alert_id: int | None, by: str | None, comment: str | None = None) -> Outcome:
    """Acknowledge alert `alert_id` as `by` (persisted; stops reminders)."""
    name = (by or "").strip()
    if alert_id is None:
        return Outcome(False, "Choose an alert first.")
    if not name:
        return Outcome(False, "Enter your name: acknowledgements say who took the alert.")
    try:
        with common.write() as conn:
            service.acknowledge(conn, int(alert_id), by=name[:200], comment=(comment or None))
    except LookupError as error:
        return Outcome(False, str(error))
    return Outcome(True, f"Alert #{int(alert_id)} acknowledged by {name[:200]}.")


def silence_alert(alert_id: int | None, by: str | None, duration: str | None,
                  comment: str | None = None) -> Outcome:
    """Silence notifications of the series of alert `alert_id` for `duration` (e.g. '1d')."""
    name = (by or "").strip()
    if alert_id is None:
        return Outcome(False, "Choose an alert first.")
    if not name:
        return Outcome(False, "Enter your name: silences say who muted the alert.")
    if duration not in SILENCE_DURATIONS:
        return Outcome(False, f"Choose a duration ({', '.join(SILENCE_DURATIONS)}).")
    with common.read() as conn:
        frame = service.alerts(conn)
    row = frame[frame["id"] == int(alert_id)]
    if row.empty:
        return Outcome(False, f"no alert with id {alert_id}")
    record = row.iloc[0]
    until = now_epoch() + parse_duration(duration)
    try:
        with common.write() as conn:
            service.silence(conn, model=record["model"], rule=record["rule"], class_=record["class"],
                            segment=record["segment"], segment_value=record["segment_value"],
                            until=until, by=name[:200], comment=(comment or None))
    except ValueError as error:
        return Outcome(False, str(error))
    return Outcome(True, f"Notifications for alert #{int(alert_id)}'s series silenced for {duration}.")
