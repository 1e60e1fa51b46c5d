"""The outbox: claim unprocessed alert events atomically and deliver them to channels.

The healthchecks pattern. `evaluate` writes an `alert_events` row in the tick's transaction;
`deliver_pending` (its own process or job, any number of them) then:

1. claims due events with one atomic `UPDATE alert_events SET claimed_at, claim_token,
   attempts = attempts + 1 WHERE id IN (due ids) AND <still unclaimed or claim expired>` and
   commits the claim, so two senders never take the same event (on PostgreSQL the outer WHERE
   is re-checked on the locked row; on SQLite the write transaction is exclusive);
2. sends the claimed events concurrently (`monitor.alerts.channels.dispatch`: a few threads
   per channel, a time budget per pass) to every subscribed channel (severity and model
   filters) that has not already received it or given up on it, recording every attempt in
   `alert_deliveries` in its own transaction right after the attempt, so a crash never
   forgets a success;
3. settles each event: processed when every channel succeeded, failed permanently or gave
   up; else released with `next_attempt_at = now + backoff` (30 s, 60 s, ... capped at 1 h)
   after a failure, or `now` when a channel was only skipped (budget spent, or the channel
   was found down in this pass; a skip is not an attempt). A completed pass sets the event's
   `attempts` to the most attempts one channel has had, so the claim's `+ 1` stays only for
   claims that never completed, and those are bounded too (not even a poison event that
   kills its sender is claimed for ever).

Delivery is at least once: a receiver that answers after our timeout has the event and
gets it again, with the same `event_id` (see `monitor.alerts.channels.messages.event_id`) to drop it.
Retries are bounded per channel (attempts are counted from the delivery log): the attempt
that is a channel's `max_attempts`-th, or that starts when the event is older than `max_age`,
is final, and a transient failure then records `given_up` (with its error) and that channel
is never sent the event again. A permanent failure (HTTP 4xx but 408/425/429, SMTP 5xx) gives
up at once. A claim that is never completed expires after `lease` seconds and the event is
claimed again: nothing is lost, and channels with a recorded outcome are not sent again.
Silenced alerts are marked processed with outcome `silenced` and a delivery row per channel;
so are the events of a silenced incident (`monitor.alerts.incidents.silence_incident`). The
events of an incident's member alerts never reach a sender: the grouping step settles them as
`inhibited` in the tick's transaction (`monitor.alerts.grouping`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from monitor.alerts.channels import TransportError, send
from monitor.alerts.channels.dispatch import IN_FLIGHT, SKIPPED, Delivery, Result, dispatch
from monitor.alerts.incidents import silenced_incidents
from monitor.alerts.models import AlertDelivery, AlertEvent
from monitor.alerts.service import active_silences, silence_matches
from monitor.config import Channel, MonitorConfig
from monitor.timeutil import now_epoch, parse_duration

log = logging.getLogger(__name__)
LEASE_SECONDS = 300
MAX_ATTEMPTS = 12
MAX_AGE_SECONDS = 86_400
BASE_BACKOFF = 30
MAX_BACKOFF = 3600
# a channel with one of these for an event is done with it
SETTLED = ("sent", "failed_permanently", "given_up")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the outbox tries. Defaults suit the scheduler's 15 s `notify_interval`:
    a pass with a hanging channel (10 s default timeout) takes about one timeout."""

    max_attempts: int = MAX_ATTEMPTS  # per event and channel, a timeout included
    max_age: int = MAX_AGE_SECONDS  # no new attempt after a failure once an event is this old
    lease: int = LEASE_SECONDS  # a claim not settled by then is taken again; > budget + 2 timeouts
    send_budget: float = 15.0  # seconds after which a pass starts no new send
    per_channel: int = 4  # concurrent sends per channel
    limit: int = 100  # events claimed per pass

    def __post_init__(self) -> None:
        if min(self.max_attempts, self.max_age, self.lease, self.per_channel, self.limit) < 1 \
                or self.send_budget <= 0:
            raise ValueError(f"every delivery setting must be positive: {self}")


def policy_of(config: MonitorConfig) -> DeliveryPolicy:
    """The delivery policy of `[notifications]`."""
    settings = config.notifications
    return DeliveryPolicy(max_attempts=settings.max_attempts, max_age=parse_duration(settings.max_age),
                          lease=parse_duration(settings.lease), send_budget=float(parse_duration(settings.send_budget)),
                          per_channel=settings.per_channel, limit=settings.limit)


def backoff(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed attempt: 30, 60, 120, ... <= 1 h."""
    return int(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** max(0, attempts - 1)))


def _claimable(now: int, lease: int):  # type: ignore[no-untyped-def]
    return and_(AlertEvent.processed_at.is_(None),
                or_(AlertEvent.claimed_at.is_(None), AlertEvent.claimed_at < now - lease))


def claim_due(engine: Engine, now: int, *, token: str | None = None, limit: int = 100,
              lease: int = LEASE_SECONDS) -> tuple[str, list[dict[str, Any]]]:
    """Atomically claim up to `limit` due events and count an attempt for each; returns
    (claim token, the events, `attempts` being this attempt's number). The claim is
    committed before anything is sent."""
    token = token or uuid.uuid4().hex
    with engine.begin() as conn:
        due = (select(AlertEvent.id)
               .where(_claimable(now, lease), AlertEvent.next_attempt_at <= now)
               .order_by(AlertEvent.id).limit(limit)).scalar_subquery()
        conn.execute(update(AlertEvent)
                     .where(AlertEvent.id.in_(due), _claimable(now, lease))
                     .values(claimed_at=now, claim_token=token, attempts=AlertEvent.attempts + 1))
        rows = conn.execute(select(AlertEvent).where(AlertEvent.claim_token == token,
                                                     AlertEvent.processed_at.is_(None))
                            .order_by(AlertEvent.id)).mappings().all()
    return token, [dict(row) for row in rows]


def subscribed(channel: Channel, event: dict[str, Any]) -> bool:
    if event["severity"] not in channel.severity:
        return False
    return channel.models is None or event["payload"]["model"] in channel.models


@dataclass
class History:
    """What earlier passes did with one event: per channel, the final status (if any) and the
    number of attempts (every recorded send: sent, failed, failed permanently, gave up)."""

    settled: dict[str, str] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)


def _histories(engine: Engine, event_ids: list[int]) -> dict[int, History]:
    with engine.begin() as conn:
        rows = conn.execute(select(AlertDelivery.event_id, AlertDelivery.channel, AlertDelivery.status)
                            .where(AlertDelivery.event_id.in_(event_ids),
                                   AlertDelivery.status != "silenced")).all()
    histories = {event_id: History() for event_id in event_ids}
    for event_id, channel, status in rows:
        history = histories[int(event_id)]
        history.attempts[channel] += 1
        if status in SETTLED:
            history.settled[channel] = status
    return histories


def _record(engine: Engine, event_id: int, channel: str, attempt: int, status: str,
            error: str | None, started: float, now: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(AlertDelivery).values(
            event_id=event_id, channel=channel, attempt=attempt, status=status, error=error,
            duration_ms=round((time.monotonic() - started) * 1000, 1), created_at=now))


def _settle(engine: Engine, event: dict[str, Any], token: str, values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        # only the holder of the claim may settle it (a stale holder whose lease expired may not)
        conn.execute(update(AlertEvent).where(AlertEvent.id == event["id"],
                                              AlertEvent.claim_token == token).values(**values))


def _attempt(engine: Engine, config: MonitorConfig, now: int, delivery: Delivery) -> Result:
    """Send one event to one channel and record the attempt (runs on a sender thread)."""
    event, channel, attempt = delivery.event, delivery.channel, delivery.attempt
    started = time.monotonic()
    try:
        send(channel, event, config)
    except TransportError as error:
        status = ("failed_permanently" if error.permanent
                  else "given_up" if delivery.final else "failed")
        _record(engine, event["id"], channel.label, attempt, status, str(error)[:2000], started, now)
        log.warning("alert event %s to %s: %s (attempt %d%s)", event["id"], channel.label, error,
                    attempt, ", giving up" if status != "failed" else "")
        return Result(status, channel_down=error.channel_down)
    except Exception as error:  # noqa: BLE001 - a bug in one channel must not stop the others
        status = "given_up" if delivery.final else "failed"
        _record(engine, event["id"], channel.label, attempt, status,
                f"{type(error).__name__}: {error}"[:2000], started, now)
        log.exception("alert event %s to %s crashed", event["id"], channel.label)
        return Result(status)
    _record(engine, event["id"], channel.label, attempt, "sent", None, started, now)
    return Result("sent")


def _outcome(statuses: list[str]) -> str:
    if all(status == "sent" for status in statuses):
        return "sent"
    return "given_up" if "given_up" in statuses else "failed"


def _settle_after_pass(engine: Engine, event: dict[str, Any], token: str, now: int,
                       statuses: dict[str, str], attempts: Counter[str]) -> None:
    """Processed, released for a retry, or (a send still running) left to its lease.
    `statuses`: every subscribed channel's status, earlier passes included; `attempts`: the
    attempts per channel, this pass included. The event's `attempts` becomes the largest."""
    if IN_FLIGHT in statuses.values():
        return  # its outcome is not known yet; the lease brings the event back if needed
    values: dict[str, Any] = {"attempts": max(attempts.values(), default=0)}
    failed = [attempts[label] for label, status in statuses.items() if status == "failed"]
    if all(status in SETTLED for status in statuses.values()):
        values.update(processed_at=now, outcome=_outcome(list(statuses.values())))
    elif failed:
        values.update(next_attempt_at=now + backoff(min(failed)), claimed_at=None, claim_token=None)
    else:  # only skips left (budget spent or channel down this pass): due again at once
        values.update(next_attempt_at=now, claimed_at=None, claim_token=None)
    _settle(engine, event, token, values)


def _give_up_unsettled(engine: Engine, event: dict[str, Any], token: str, now: int,
                       channels: list[Channel], history: History) -> None:
    """The event was claimed `max_attempts` times without the pass completing (the sender
    was killed or hung past the lease each time): give up rather than try for ever."""
    statuses = dict(history.settled)
    for channel in channels:
        if channel.label not in statuses:
            _record(engine, event["id"], channel.label, history.attempts[channel.label] + 1, "given_up",
                    "no outcome after repeated claims (sender killed or hung past the lease)",
                    time.monotonic(), now)
            statuses[channel.label] = "given_up"
    log.warning("alert event %s: gave up after %d claims without an outcome", event["id"],
                int(event["attempts"]) - 1)
    _settle(engine, event, token, {"processed_at": now, "outcome": _outcome(list(statuses.values()))})


def deliver_pending(engine: Engine, config: MonitorConfig, now: int | None = None, *,
                    policy: DeliveryPolicy | None = None) -> dict[str, int]:
    """Deliver every due event to every subscribed channel; returns counts (events claimed,
    deliveries sent, deliveries failed (a give-up included), events silenced). Safe to run
    concurrently and after a crash; returns within about `send_budget` plus one channel
    timeout (a hanging channel costs one timeout per pass, not one per event)."""
    policy = policy or policy_of(config)
    now = now_epoch() if now is None else int(now)
    totals = {"events": 0, "sent": 0, "failed": 0, "silenced": 0}
    token, events = claim_due(engine, now, limit=policy.limit, lease=policy.lease)
    if not events:
        return totals
    totals["events"] = len(events)
    with engine.begin() as conn:
        silences = active_silences(conn, now).to_dict("records")
        muted = silenced_incidents(conn, now)
    histories = _histories(engine, [int(e["id"]) for e in events])
    deliveries: list[Delivery] = []
    waiting: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    for event in events:
        channels = [c for c in config.channels if subscribed(c, event)]
        history = histories[int(event["id"])]
        # a completed pass sets `attempts` to the most attempts of a channel and the claim adds
        # one; any excess is claims that never completed
        unfinished_claims = int(event["attempts"]) - 1 - max(history.attempts.values(), default=0)
        if not channels:
            _settle(engine, event, token, {"processed_at": now, "outcome": "no_channel"})
        elif event.get("incident_id") in muted or any(silence_matches(s, event["payload"]) for s in silences):
            for channel in channels:
                _record(engine, event["id"], channel.label, int(event["attempts"]), "silenced", None,
                        time.monotonic(), now)
            _settle(engine, event, token, {"processed_at": now, "outcome": "silenced"})
            totals["silenced"] += 1
        elif unfinished_claims >= policy.max_attempts:
            _give_up_unsettled(engine, event, token, now, channels, history)
        else:
            old = now - int(event["created_at"]) >= policy.max_age
            for channel in channels:
                if channel.label not in history.settled:
                    attempt = history.attempts[channel.label] + 1
                    deliveries.append(Delivery(event, channel, attempt, old or attempt >= policy.max_attempts))
            waiting[int(event["id"])] = (event, {c.label: history.settled.get(c.label, SKIPPED) for c in channels})
    results = dispatch(deliveries, lambda d: _attempt(engine, config, now, d),
                       budget=policy.send_budget, per_channel=policy.per_channel)
    for (event_id, label), status in results.items():
        waiting[event_id][1][label] = status
        if status != SKIPPED:
            histories[event_id].attempts[label] += 1
        totals["sent"] += status == "sent"
        totals["failed"] += status in ("failed", "failed_permanently", "given_up")
    for event_id, (event, statuses) in waiting.items():
        _settle_after_pass(engine, event, token, now, statuses, histories[event_id].attempts)
    return totals
