"""Alert rule evaluation, called once per tick per model inside the tick's transaction.

`evaluate(conn, config, ctx, as_of)`:
1. For every enabled rule (the default rule when a model has none), read the observations of
   every window end from just after the last end evaluated up to `floor(as_of, step)` (at most
   `retention.label_horizon` back), through the domain services (`monitor.alerts.sources`).
2. Classify them (`monitor.alerts.rules.classify`: drop test, Benjamini-Hochberg per window
   end across all series of all rules, `min_drop`, `floor`, `min_support`, maturity).
3. Advance each series' state machine (`monitor.alerts.lifecycle`) one window end at a time,
   in data-time order, and persist: series state, alert rows, and an outbox event for every
   change that should notify (firing, escalated, reminder, resolved). Nothing is sent here;
   `monitor.alerts.outbox.deliver_pending` does that after the transaction commits.
4. Group the firing recall alerts into incidents (`monitor.alerts.grouping`): one per cause,
   which notifies instead of its member alerts.

started_at / fired_at / resolved_at are window ends (data time); `fired_as_of` is the clock at
which the alert fired (with delayed labels it lags fired_at by the label maturity time).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections import Counter
from typing import Any, cast

import pandas as pd
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.channels.messages import describe
from monitor.alerts.lifecycle import Policy, SeriesState, advance
from monitor.alerts.models import Alert, AlertEvent, AlertSeries
from monitor.alerts.rules import classify, fingerprint, rules_for
from monitor.alerts.sources import observe
from monitor.config import AlertRule, MonitorConfig
from monitor.context import ModelContext
from monitor.store.bulk import inserted_id, update_rows
from monitor.store.windows import WindowSpec
from monitor.timeutil import floor_to, now_epoch, parse_duration

log = logging.getLogger(__name__)
NOTIFYING = ("firing", "escalated", "reminder", "resolved")
OPEN_STATES = ("pending", "firing")


def policy_for(rule: AlertRule) -> Policy:
    return Policy(pending_evaluations=rule.pending_evaluations,
                  resolve_evaluations=rule.resolve_evaluations,
                  repeat_interval=parse_duration(rule.repeat_interval),
                  critical_fires_at_once=rule.critical_fires_at_once)


def evaluate(conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int,
             now: int | None = None, errors: list[str] | None = None) -> dict[str, int]:
    """Evaluate every rule of `ctx` up to data time `as_of`; write state changes and events.
    Returns counts for the tick summary (alerts_fired, alerts_resolved, alerts_firing, ...).

    A rule whose observations fail (a bug, a window the service refuses) raises at once when
    `errors` is None. The tick passes a list instead: the failure is logged with its traceback
    and appended there (the tick is then recorded as failed), and the model's other rules
    still run, so one broken rule never silences the recall alerts beside it."""
    from monitor.metrics.maturity import reuse_curves

    with reuse_curves():  # every rule reads the same label maturity curve
        return _evaluate(conn, config, ctx, as_of, now, errors)


def _evaluate(conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int, now: int | None,
              errors: list[str] | None) -> dict[str, int]:
    rules = {rule.name: rule for rule in rules_for(ctx.config)}
    last_ends = _last_ends(conn, ctx.model_id)
    horizon = parse_duration(config.retention.label_horizon)
    counts: Counter[str] = Counter()
    parts = []
    for rule in rules.values():
        step, window = parse_duration(rule.step), parse_duration(rule.window)
        current = floor_to(int(as_of), step)
        lookback = parse_duration(rule.lookback) if rule.lookback else horizon
        first = current - floor_to(lookback, step)
        if rule.name in last_ends:
            first = max(first, last_ends[rule.name] + step)
        if first > current:
            continue
        spec = WindowSpec(window, step, first, current)
        if errors is None:
            parts.append(observe(conn, ctx, rule, spec, int(as_of)))
            continue
        try:
            with conn.begin_nested():  # a failed read must not abort the others' transaction
                parts.append(observe(conn, ctx, rule, spec, int(as_of)))
        except Exception as error:  # noqa: BLE001 - reported as the tick's failure, not skipped
            log.exception("alert rule %r of model %s failed", rule.name, ctx.name)
            errors.append(f"alert rule {rule.name!r}: {type(error).__name__}: {error}")
    parts = [part for part in parts if len(part)]
    if parts:
        frame = classify(pd.concat(parts, ignore_index=True), rules)
        counts.update(apply_observations(conn, config, ctx, rules, frame, as_of, now=now))
    counts.update(_open_counts(conn, ctx.model_id))
    counts.update(_group(conn, config, ctx, as_of, now, errors))
    return dict(counts)


def _group(conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int, now: int | None,
           errors: list[str] | None) -> Counter[str]:
    """Group the firing alerts into incidents (`monitor.alerts.grouping`). In a tick a failure
    is reported like a broken rule, and the alerts then notify on their own (nothing inhibited)."""
    from monitor.alerts.grouping import group_incidents

    if errors is None:
        return group_incidents(conn, config, ctx, int(as_of), now=now)
    try:
        with conn.begin_nested():
            return group_incidents(conn, config, ctx, int(as_of), now=now)
    except Exception as error:  # noqa: BLE001 - reported as the tick's failure; alerts still notify
        log.exception("grouping the alerts of model %s into incidents failed", ctx.name)
        errors.append(f"incidents: {type(error).__name__}: {error}")
        return Counter()


def _last_ends(conn: Connection, model_id: int) -> dict[str, int]:
    """Per rule, the earliest `last_end` among its series: where the next evaluation starts."""
    rows = conn.execute(
        select(AlertSeries.rule, AlertSeries.last_end).where(AlertSeries.model_id == model_id)
    ).all()
    ends: dict[str, int] = {}
    for rule, end in rows:
        if end is not None:
            ends[rule] = min(ends.get(rule, end), int(end))
    return ends


def _open_counts(conn: Connection, model_id: int) -> Counter[str]:
    rows = conn.execute(
        select(Alert.state).where(Alert.model_id == model_id, Alert.state.in_(OPEN_STATES))
    ).scalars().all()
    return Counter({"alerts_firing": rows.count("firing"), "alerts_pending": rows.count("pending")})


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return value


def apply_observations(conn: Connection, config: MonitorConfig, ctx: ModelContext,
                       rules: dict[str, AlertRule], frame: pd.DataFrame, as_of: int,
                       now: int | None = None) -> Counter[str]:
    """Advance every series of `frame` (classified observations) through its window ends."""
    now = now_epoch() if now is None else int(now)
    counts: Counter[str] = Counter()
    # text columns as Python objects once (pyarrow-backed strings cost ~0.5 us per element
    # each time they are iterated, and every column is iterated per series below)
    frame = frame.astype({name: object for name, dtype in frame.dtypes.items()
                          if isinstance(dtype, pd.StringDtype)})
    frame["fingerprint"] = [
        fingerprint(ctx.name, r, m, str(c), str(s), str(v)) for r, m, c, s, v in zip(
            frame["rule"], frame["metric"], frame["class"], frame["segment"], frame["segment_value"],
            strict=True)
    ]
    state_columns = [AlertSeries.id, AlertSeries.status, AlertSeries.streak, AlertSeries.last_end,
                     AlertSeries.last_value, AlertSeries.last_support, AlertSeries.alert_id]
    existing = {row.fingerprint: row._asdict() for row in conn.execute(
        select(AlertSeries.fingerprint, *state_columns).where(AlertSeries.model_id == ctx.model_id))}
    open_alerts = {row.id: row._asdict() for row in conn.execute(
        select(Alert).where(Alert.model_id == ctx.model_id, Alert.state.in_(OPEN_STATES))).all()}
    frame = frame.sort_values(["fingerprint", "end"], kind="stable")
    # records built series by series from the columns (to_dict("records") of the whole frame
    # took seconds and a few KB per series: GBs with hundreds of thousands of series)
    names = list(frame.columns)
    records = (dict(zip(names, values, strict=True)) for values in frame.itertuples(index=False, name=None))
    writes = SeriesWrites()
    for key, series_records in itertools.groupby(records, key=lambda record: str(record["fingerprint"])):
        group = list(series_records)
        series = existing.get(key)
        alert = open_alerts.get(series["alert_id"]) if series and series["alert_id"] else None
        rule = rules[group[0]["rule"]]
        _advance_series(conn, ctx, rule, key, series, alert, group, as_of, now, counts, writes)
        if len(writes) >= SeriesWrites.BATCH:
            writes.flush(conn)
    writes.flush(conn)
    return counts


SERIES = cast(Table, AlertSeries.__table__)  # declared as FromClause; a mapped class's is a Table


class SeriesWrites:
    """The series' new states, written in two statements for all of them: a tick evaluates
    every series (with intersections of many-valued segments, hundreds of thousands), and one
    statement per series made the evaluation take minutes (bench/segments.py). Alerts and
    events, which change rarely, are still written one by one as they happen."""

    BATCH = 50_000  # rows held before they are written

    def __init__(self) -> None:
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates)

    def flush(self, conn: Connection) -> None:
        if self.inserts:
            conn.execute(insert(AlertSeries), self.inserts)
        if self.updates:
            update_rows(conn, SERIES, pd.DataFrame(self.updates), key_columns=["id"])
        self.inserts, self.updates = [], []


def _policy(rule: AlertRule) -> Policy:
    """`policy_for(rule)`, read once per series (hundreds of thousands a tick): cached by value."""
    return _policy_of(rule.pending_evaluations, rule.resolve_evaluations, rule.repeat_interval,
                      rule.critical_fires_at_once)


@functools.lru_cache(maxsize=256)
def _policy_of(pending: int, resolve: int, repeat: str, critical: bool) -> Policy:
    return Policy(pending_evaluations=pending, resolve_evaluations=resolve, repeat_interval=parse_duration(repeat),
                  critical_fires_at_once=critical)


def _state_of(series: dict[str, Any] | None, alert: dict[str, Any] | None) -> SeriesState:
    if series is None:
        return SeriesState()
    status = series["status"] if alert is not None or series["status"] not in OPEN_STATES else "ok"
    return SeriesState(
        status=status, streak=int(series["streak"] or 0),
        severity=alert["severity"] if alert else None,
        started_at=alert["started_at"] if alert else None,
        last_notified_at=alert["last_notified_at"] if alert else None,
        acknowledged=bool(alert and alert["acknowledged_at"] is not None),
    )


def _advance_series(conn: Connection, ctx: ModelContext, rule: AlertRule, key: str,
                    series: dict[str, Any] | None, alert: dict[str, Any] | None,
                    group: list[dict[Any, Any]], as_of: int, now: int, counts: Counter[str],
                    writes: SeriesWrites) -> None:
    state = _state_of(series, alert)
    policy = _policy(rule)
    last_end = series["last_end"] if series else None
    alert_id = alert["id"] if alert else None
    last: dict[Any, Any] = {}
    for obs in group:
        end = int(obs["end"])
        if last_end is not None and end <= last_end:
            continue
        state, transitions = advance(state, obs["observation"], obs["severity"], end, policy)
        if obs["observation"] == "provisional":
            continue
        last_end, last = end, obs
        counts["series_evaluated"] += 1
        counts["series_insufficient"] += obs["observation"] == "insufficient"
        if not transitions and alert_id is None:
            continue  # nothing to write but the series' state (most series, most ticks)
        record = _record(ctx, rule, key, obs, state)
        for transition in transitions:
            if transition == "pending":
                alert_id = _open_alert(conn, ctx, record, end, now)
            elif transition == "cancel" and alert_id is not None:
                conn.execute(delete(Alert).where(Alert.id == alert_id, Alert.state == "pending"))
                alert_id = None
        if alert_id is None:
            continue
        values = _alert_values(record, now)
        if "firing" in transitions:
            values.update(state="firing", fired_at=end, fired_as_of=int(as_of), last_notified_at=end)
            counts["alerts_fired"] += 1
        if "resolved" in transitions:
            values.update(state="resolved", resolved_at=end)
            counts["alerts_resolved"] += 1
        if "reminder" in transitions or "escalated" in transitions:
            values["last_notified_at"] = end
        conn.execute(update(Alert).where(Alert.id == alert_id).values(**values))
        for kind in (t for t in transitions if t in NOTIFYING):
            _write_event(conn, alert_id, kind, end, now)
            counts["events"] += 1
        if "resolved" in transitions:
            alert_id = None
    if last_end is None:
        return
    values = dict(status=state.status, streak=state.streak, last_end=last_end,
                  alert_id=alert_id, updated_at=now)
    if last:
        values.update(last_value=_clean(last.get("value")), last_support=_clean(last.get("support")))
    else:  # a tick with no new window end keeps the last observation's value and support
        values.update(last_value=series["last_value"] if series else None,
                      last_support=series["last_support"] if series else None)
    if series is None:
        first = group[0]
        writes.inserts.append(dict(
            model_id=ctx.model_id, fingerprint=key, rule=rule.name, metric=str(first["metric"]),
            class_name=str(first["class"]), segment=str(first["segment"]),
            segment_value=str(first["segment_value"]), **values))
    else:
        writes.updates.append(dict(id=series["id"], **values))


def _record(ctx: ModelContext, rule: AlertRule, key: str, obs: dict[Any, Any],
            state: SeriesState) -> dict[str, Any]:
    record = {
        "model": ctx.name, "rule": rule.name, "metric": str(obs["metric"]),
        "class": str(obs["class"]), "segment": str(obs["segment"]),
        "segment_value": str(obs["segment_value"]), "fingerprint": key,
        "severity": state.severity or str(obs["severity"]), "window": parse_duration(rule.window),
        "end": int(obs["end"]),
        **{name: _clean(obs.get(name)) for name in
           ("value", "reference_value", "low", "high", "p_value")},
        "support": None if _clean(obs.get("support")) is None else int(obs["support"]),
    }
    record["message"] = describe(record)
    return record


def _alert_values(record: dict[str, Any], now: int) -> dict[str, Any]:
    return {name: record[name] for name in
            ("value", "reference_value", "low", "high", "support", "p_value", "message",
             "severity")} | {"updated_at": now}


def _open_alert(conn: Connection, ctx: ModelContext, record: dict[str, Any], end: int, now: int) -> int:
    result = conn.execute(insert(Alert).values(
        model_id=ctx.model_id, fingerprint=record["fingerprint"], rule=record["rule"],
        metric=record["metric"], class_name=record["class"], segment=record["segment"],
        segment_value=record["segment_value"], state="pending", window=record["window"],
        started_at=end, **_alert_values(record, now)))
    return inserted_id(result)


def alert_snapshot(conn: Connection, alert_id: int) -> dict[str, Any]:
    """The alert as a plain dict (the event payload): names as in the docs/contract.md records."""
    row = conn.execute(
        select(Alert, AlertSeries.id.label("series_id"))
        .outerjoin(AlertSeries, AlertSeries.fingerprint == Alert.fingerprint)
        .where(Alert.id == alert_id)
    ).one()._asdict()
    from monitor.store.models import MonitoredModel

    model = conn.execute(select(MonitoredModel.name).where(MonitoredModel.id == row["model_id"])).scalar_one()
    snapshot = {name: row[name] for name in (
        "id", "rule", "metric", "segment", "segment_value", "state", "severity", "window",
        "started_at", "fired_at", "resolved_at", "value", "reference_value", "low", "high",
        "support", "p_value", "message", "fingerprint", "acknowledged_by")}
    snapshot.update({"model": model, "class": row["class_name"]})
    return snapshot


def _write_event(conn: Connection, alert_id: int, kind: str, end: int, now: int) -> None:
    snapshot = alert_snapshot(conn, alert_id)
    conn.execute(insert(AlertEvent).values(
        alert_id=alert_id, model_id=conn.execute(select(Alert.model_id).where(Alert.id == alert_id)).scalar_one(),
        kind=kind, severity=snapshot["severity"], data_time=end, payload=snapshot,
        created_at=now, next_attempt_at=now, attempts=0))
