"""Incidents: the firing alerts of one model and class grouped by cause, once per evaluation.

Run by `monitor.alerts.engine.evaluate` after the rules advanced every series (so live ticks,
`monitor ingest --as-of` and `monitor backtest` group the same way), in the same transaction:

1. **Group.** The firing alerts of a grouped metric (recall) that belong to no incident yet
   are taken in data-time order of `fired_at`; for each window end and class the slice search
   (`monitor.incidents.slices`) runs on that window and names the causes. A member goes to
   the cause it contains or lies in (`*` contains every cause, `region=south` contains
   `region=south&sex=F`); else, unless its alert is critical (a sure collapse is no ripple of
   a fault elsewhere), to the cause the search says explains it, or, when its drop is not
   significant on its own, to the first cause it overlaps. A member no cause explains is its
   own cause; the overall series is then `global`, and so is everything when the search calls
   the drop global and names no cause.
2. **Absorb or open.** An open incident with the cause's fingerprint (model, class, metric,
   slice) absorbs the members; so does an open incident of the same class opened within the
   grouping window (`[models.incidents] group_window`, default the rule's window: a fault takes
   that long to fill the window, and the series it ripples into cross their thresholds meanwhile) whose cause is related (one slice
   inside the other, or global), or any such incident when none of the members is critical:
   a warning dip beside an open incident is listed in it rather than paged alone, and only a
   sure collapse elsewhere opens another incident. Within one window end, sure collapses
   (critical) open first.
   Otherwise a new incident opens, with the cause's numbers, its evidence
   (`monitor.incidents.evidence`) and an outbox event (`firing`).
3. **Escalate, resolve.** Severity is the highest member's (an increase notifies,
   `escalated`); an incident resolves when every member alert has resolved, at the last
   member's `resolved_at` (`resolved`).
4. **Inhibit.** A member alert's own events are settled as `inhibited` before any sender can
   claim them: the incident notifies instead (data-driven inhibition; alerts of other metrics
   notify as before).
5. **Remind** by the wall clock: an open, unacknowledged incident notified `repeat_interval`
   ago (the shortest of its members' rules) gets a `reminder`, only in a live tick (the clock
   within `LIVE_SLACK` of `as_of`), never during a backfill or a replay.

Incident events are `alert_events` rows with `incident_id` set and `alert_id` the incident's
first member, so the outbox, its retries and its delivery log serve them unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from monitor.alerts.incidents import incident_snapshot
from monitor.alerts.lifecycle import SEVERITY_RANK
from monitor.alerts.models import Alert, AlertEvent
from monitor.alerts.rules import rules_for
from monitor.config import MonitorConfig
from monitor.context import ModelContext
from monitor.incidents.describe import GLOBAL, incident_fingerprint, incident_message, series_name
from monitor.incidents.evidence import incident_evidence
from monitor.incidents.models import Incident
from monitor.incidents.slices import slices_frame
from monitor.store.bulk import inserted_id
from monitor.store.slices import slice_pairs
from monitor.timeutil import now_epoch, parse_duration

log = logging.getLogger(__name__)
GROUPED_METRICS = ("recall",)  # the slice search explains drops of recall
LIVE_SLACK = 3600  # a tick whose as_of is this close to the clock is live (reminders allowed)
INHIBITED = "inhibited"
NUMBERS = ("value", "reference_value", "low", "high", "support", "excess_fn", "share")
Key = frozenset[tuple[str, str]]


@dataclass
class Cause:
    segment: str
    segment_value: str
    numbers: dict[str, Any]
    named: bool = True  # the slice search named it (a cause, or a global verdict)

    @property
    def key(self) -> Key:
        return _key(self.segment, self.segment_value)


def _key(segment: str, value: str) -> Key:
    """The series' (attribute, value) pairs; an intersection whose values hold `&` themselves
    (ambiguous, `slice_pairs`) is one opaque pair, related to no other series."""
    if segment == GLOBAL:
        return frozenset()
    pairs = slice_pairs(segment, value)
    return frozenset(pairs if pairs is not None else ((segment, value),))


def _related(a: Key, b: Key) -> bool:
    return a <= b or b <= a


def _overlaps(a: Key, b: Key) -> bool:
    values = dict(a)
    return all(values.get(attribute, value) == value for attribute, value in b)


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def group_incidents(conn: Connection, config: MonitorConfig, ctx: ModelContext, as_of: int,
                    now: int | None = None) -> Counter[str]:
    """Group, absorb or open, escalate, resolve, inhibit and remind (module doc); counts."""
    now = now_epoch() if now is None else int(now)
    counts: Counter[str] = Counter()
    settings = ctx.config.incidents
    if not settings.enabled:  # every alert notifies on its own; open incidents still resolve
        _close_finished(conn, ctx, now, counts, until=None)
        return counts
    wait = parse_duration(settings.group_window) if settings.group_window else None
    new = [dict(r) for r in conn.execute(
        select(Alert).where(Alert.model_id == ctx.model_id, Alert.metric.in_(GROUPED_METRICS),
                            Alert.incident_id.is_(None), Alert.fired_at.is_not(None))
        .order_by(Alert.fired_at, Alert.id)).mappings().all()]
    by_end: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for alert in new:
        by_end[int(alert["fired_at"])].append(alert)
    for end in sorted(by_end):
        _close_finished(conn, ctx, now, counts, until=end)
        batches: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        for alert in by_end[end]:
            batches[(alert["class_name"], alert["metric"], int(alert["window"]))].append(alert)
        for (cls, metric, window), members in batches.items():
            for cause, group in _assign(conn, ctx, cls, end, window, members, settings.depth):
                _absorb_or_open(conn, ctx, cls, metric, window, cause, group, end, as_of, now, counts,
                                window if wait is None else wait)
    _escalate(conn, ctx, now, counts)
    _close_finished(conn, ctx, now, counts, until=None)
    counts["alerts_inhibited"] += _inhibit(conn, ctx.model_id, now)
    if now - int(as_of) <= LIVE_SLACK:
        _remind(conn, ctx, int(as_of), now, counts)
    counts["incidents_open"] = len(_open_incidents(conn, ctx.model_id))
    return counts


def _assign(conn: Connection, ctx: ModelContext, cls: str, end: int, window: int,
            members: list[dict[str, Any]], depth: int) -> list[tuple[Cause, list[dict[str, Any]]]]:
    """The members of one class firing at `end`, by the cause that explains them (module doc)."""
    try:
        with conn.begin_nested():
            frame = slices_frame(conn, ctx, cls=cls, end=end, window=window, depth=depth)
    except ValueError:  # a class the counts do not know: every member is its own cause
        frame = pd.DataFrame()
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    rows = {(r["segment"], r["segment_value"]): r for r in records}
    causes = [_cause_of(r) for r in records if r["status"] == "cause"]
    status = records[0]["status"] if records else "no_drop"
    grouped: dict[tuple[str, str], tuple[Cause, list[dict[str, Any]]]] = {}
    for member in members:
        row = rows.get((member["segment"], member["segment_value"]))
        critical = member["severity"] == "critical"
        cause = _match(_key(member["segment"], member["segment_value"]), causes, row, status, critical=critical)
        if cause is None:
            if member["segment"] == GLOBAL or (status == "global" and not critical):
                cause = _cause_of(records[0], named=status == "global") if records else _own(member, GLOBAL, GLOBAL)
            else:
                cause = _cause_of(row, named=False) if row is not None else _own(member, member["segment"],
                                                                                 member["segment_value"])
        grouped.setdefault((cause.segment, cause.segment_value), (cause, []))[1].append(member)
    # sure collapses open their incidents first, so that the ripples of the batch can join them
    return sorted(grouped.values(), key=lambda item: -max(SEVERITY_RANK.get(m["severity"], 0) for m in item[1]))


def _match(key: Key, causes: list[Cause], row: dict[str, Any] | None, status: str, *,
           critical: bool) -> Cause | None:
    if status == "global" or (critical and key):
        # the causes do not explain the overall drop, or the member is a sure collapse (no
        # ripple of a cause elsewhere): only a cause inside or around its own slice
        return next((c for c in causes if c.key <= key or (critical and key <= c.key)), None)
    for cause in causes:
        if _related(key, cause.key):
            return cause
    named = str(row["explained_by"]).split("; ") if row is not None and row["explained_by"] else []
    for cause in causes:
        if series_name(cause.segment, cause.segment_value) in named:
            return cause
    if row is None or row["status"] in ("explained", "weak"):  # diluted, not a drop of its own
        return next((c for c in causes if _overlaps(key, c.key)), None)
    return None


def _cause_of(row: dict[str, Any], *, named: bool = True) -> Cause:
    numbers = {"value": row["recall"], "reference_value": row["reference_recall"], "low": row["recall_low"],
               "high": row["recall_high"], "support": row["support"], "excess_fn": row["excess_fn"],
               "share": row["share"]}
    return Cause(str(row["segment"]), str(row["segment_value"]), {k: _clean(v) for k, v in numbers.items()}, named)


def _own(member: dict[str, Any], segment: str, value: str) -> Cause:
    numbers = {name: _clean(member.get(name)) for name in NUMBERS}
    return Cause(segment, value, numbers, named=False)


def _open_incidents(conn: Connection, model_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(Incident).where(
        Incident.model_id == model_id, Incident.state == "open").order_by(Incident.id)).mappings().all()]


def _absorb_or_open(conn: Connection, ctx: ModelContext, cls: str, metric: str, window: int, cause: Cause,
                    members: list[dict[str, Any]], end: int, as_of: int, now: int, counts: Counter[str],
                    wait: int) -> None:
    fingerprint = incident_fingerprint(ctx.name, cls, metric, cause.segment, cause.segment_value)
    candidates = [i for i in _open_incidents(conn, ctx.model_id)
                  if i["class_name"] == cls and i["metric"] == metric]
    incident = next((i for i in candidates if i["fingerprint"] == fingerprint), None)
    if incident is None:
        recent = [i for i in candidates if int(i["fired_at"]) >= end - wait
                  and _joins(_key(i["segment"], i["segment_value"]), cause, members)]
        incident = recent[-1] if recent else None
    if incident is not None:
        _absorb(conn, incident, members, now, counts)
        return
    _open(conn, ctx, cls, metric, window, cause, fingerprint, members, end, as_of, now, counts)


def _joins(incident: Key, cause: Cause, members: list[dict[str, Any]]) -> bool:
    """Does a cause found soon after an open incident belong to it? When the cause contains the
    incident's (global contains all), when it lies inside it (unless the incident is global and
    a member a sure collapse: a fault of its own), or when the members are warnings: a dip
    beside an open incident (a ripple, or the tail of the same event) is listed in it rather
    than paged alone."""
    critical = any(m["severity"] == "critical" for m in members)
    if cause.key <= incident or (incident <= cause.key and (incident or not critical)):
        return True
    # warnings beside an open incident are listed in it rather than paged alone; only a sure
    # collapse elsewhere is a fault of its own
    return not critical


def _names(members: list[dict[str, Any]]) -> list[str]:
    return [series_name(m["segment"], m["segment_value"]) for m in members]


def _record(incident: dict[str, Any]) -> dict[str, Any]:
    return {**incident, "class": incident["class_name"]}


def _absorb(conn: Connection, incident: dict[str, Any], members: list[dict[str, Any]], now: int,
            counts: Counter[str]) -> None:
    explains = list(incident["explains"] or [])
    explains += [name for name in _names(members) if name not in explains]
    message = incident_message(_record(incident), explains, list(incident["evidence"] or []))
    conn.execute(update(Incident).where(Incident.id == incident["id"]).values(
        explains=explains, message=message, updated_at=now))
    conn.execute(update(Alert).where(Alert.id.in_([m["id"] for m in members])).values(incident_id=incident["id"]))
    counts["alerts_grouped"] += len(members)


def _evidence(conn: Connection, ctx: ModelContext, cls: str, cause: Cause, end: int, window: int) -> list[str]:
    try:
        with conn.begin_nested():
            return incident_evidence(conn, ctx, cls=cls, segment=cause.segment, segment_value=cause.segment_value,
                                     end=end, window=window)
    except Exception:  # noqa: BLE001 - evidence is a courtesy: it must never keep an incident from opening
        log.exception("evidence for an incident of model %s failed", ctx.name)
        return []


def _open(conn: Connection, ctx: ModelContext, cls: str, metric: str, window: int, cause: Cause, fingerprint: str,
          members: list[dict[str, Any]], end: int, as_of: int, now: int, counts: Counter[str]) -> None:
    explains = _names(members)
    evidence = _evidence(conn, ctx, cls, cause, end, window)
    severity = max((m["severity"] for m in members), key=lambda s: SEVERITY_RANK.get(s, 0))
    record = {"metric": metric, "class": cls, "segment": cause.segment, "segment_value": cause.segment_value,
              "window": window, "fired_at": end, **cause.numbers}
    support = cause.numbers.get("support")
    incident_id = inserted_id(conn.execute(insert(Incident).values(
        model_id=ctx.model_id, fingerprint=fingerprint, state="open", severity=severity, metric=metric,
        class_name=cls, segment=cause.segment, segment_value=cause.segment_value, window=window,
        explains=explains, started_at=min(int(m["started_at"]) for m in members), fired_at=end,
        fired_as_of=int(as_of), evidence=evidence, message=incident_message(record, explains, evidence),
        last_notified_at=now, created_at=now, updated_at=now,
        **{k: v for k, v in cause.numbers.items() if k != "support"},
        support=None if support is None else int(support))))
    conn.execute(update(Alert).where(Alert.id.in_([m["id"] for m in members])).values(incident_id=incident_id))
    _write_event(conn, ctx.model_id, incident_id, "firing", end, now)
    counts["incidents_opened"] += 1
    counts["alerts_grouped"] += len(members)


def _members(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(
        Alert.id, Alert.state, Alert.severity, Alert.rule, Alert.fired_at, Alert.resolved_at, Alert.last_notified_at)
        .where(Alert.incident_id == incident_id).order_by(Alert.id)).mappings().all()]


def _close_finished(conn: Connection, ctx: ModelContext, now: int, counts: Counter[str], *, until: int | None) -> None:
    """Resolve the open incidents whose members have all resolved (by `until`, in data time)."""
    for incident in _open_incidents(conn, ctx.model_id):
        members = _members(conn, incident["id"])
        if not members or any(m["state"] != "resolved" for m in members):
            continue
        resolved_at = max(int(m["resolved_at"]) for m in members)
        if until is not None and resolved_at > until:
            continue
        conn.execute(update(Incident).where(Incident.id == incident["id"]).values(
            state="resolved", resolved_at=resolved_at, updated_at=now))
        _write_event(conn, ctx.model_id, incident["id"], "resolved", resolved_at, now)
        counts["incidents_resolved"] += 1


def _escalate(conn: Connection, ctx: ModelContext, now: int, counts: Counter[str]) -> None:
    for incident in _open_incidents(conn, ctx.model_id):
        members = _members(conn, incident["id"])
        worst = max(members, key=lambda m: (SEVERITY_RANK.get(m["severity"], 0), m["last_notified_at"] or 0),
                    default=None)
        if worst is None or SEVERITY_RANK.get(worst["severity"], 0) <= SEVERITY_RANK.get(incident["severity"], 0):
            continue
        conn.execute(update(Incident).where(Incident.id == incident["id"]).values(
            severity=worst["severity"], last_notified_at=now, updated_at=now))
        _write_event(conn, ctx.model_id, incident["id"], "escalated",
                     int(worst["last_notified_at"] or worst["fired_at"]), now)
        counts["incidents_escalated"] += 1


def _inhibit(conn: Connection, model_id: int, now: int) -> int:
    """Settle the unsent events of member alerts as `inhibited`: their incident notifies."""
    members = select(Alert.id).where(Alert.model_id == model_id, Alert.incident_id.is_not(None))
    result = conn.execute(update(AlertEvent).where(
        AlertEvent.model_id == model_id, AlertEvent.incident_id.is_(None), AlertEvent.processed_at.is_(None),
        AlertEvent.claimed_at.is_(None), AlertEvent.alert_id.in_(members.scalar_subquery()),
    ).values(processed_at=now, outcome=INHIBITED))
    return int(result.rowcount or 0)


def _remind(conn: Connection, ctx: ModelContext, as_of: int, now: int, counts: Counter[str]) -> None:
    repeat = {rule.name: parse_duration(rule.repeat_interval) for rule in rules_for(ctx.config)}
    for incident in _open_incidents(conn, ctx.model_id):
        if incident["acknowledged_at"] is not None or incident["last_notified_at"] is None:
            continue
        rules = {m["rule"] for m in _members(conn, incident["id"])}
        interval = min((repeat[r] for r in rules if r in repeat), default=86400)
        if now - int(incident["last_notified_at"]) < interval:
            continue
        conn.execute(update(Incident).where(Incident.id == incident["id"]).values(last_notified_at=now, updated_at=now))
        _write_event(conn, ctx.model_id, incident["id"], "reminder", as_of, now)
        counts["incidents_reminded"] += 1


def _write_event(conn: Connection, model_id: int, incident_id: int, kind: str, data_time: int, now: int) -> None:
    snapshot = incident_snapshot(conn, incident_id)
    lead = conn.execute(select(Alert.id).where(Alert.incident_id == incident_id).order_by(Alert.id)
                        .limit(1)).scalar_one()
    conn.execute(insert(AlertEvent).values(
        alert_id=lead, model_id=model_id, incident_id=incident_id, kind=kind, severity=snapshot["severity"],
        data_time=int(data_time), payload=snapshot, created_at=now, next_attempt_at=now, attempts=0))
