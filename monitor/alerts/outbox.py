"""The outbox: claim unprocessed alert events atomically and deliver them to channels.

The healthchecks pattern. `evaluate` writes an `alert_events` row in the tick's transaction;
`deliver_pending` (its own process or job, any number of them) then:

1. claims due events with one atomic `UPDATE alert_events SET claimed_at, claim_token WHERE
   id IN (due ids) AND <still unclaimed or claim expired>` and commits the claim, so two
   senders never take the same event (on PostgreSQL the outer WHERE is re-checked on the
   locked row; on SQLite the write transaction is exclusive);
2. sends each claimed event to every subscribed channel (severity and model filters) that has
   not already received it, recording every attempt in `alert_deliveries` in its own
   transaction right after the attempt, so a crash never forgets a success;
3. marks the event processed when every channel succeeded or failed permanently, else
   releases it with `next_attempt_at = now + backoff` (30 s, 60 s, ... capped at 1 h) until
   `MAX_ATTEMPTS`.

A claim that is never completed (the process was killed between claim and delivery) expires
after `LEASE_SECONDS` and the event is claimed again: nothing is lost, and channels with a
recorded success are not sent again. Silenced alerts are marked processed with outcome
`silenced` and a delivery row per channel saying so.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from monitor.alerts.channels import TransportError, send
from monitor.alerts.models import AlertDelivery, AlertEvent
from monitor.alerts.service import active_silences, silence_matches
from monitor.config import Channel, MonitorConfig
from monitor.timeutil import now_epoch

log = logging.getLogger(__name__)
LEASE_SECONDS = 300
MAX_ATTEMPTS = 12
BASE_BACKOFF = 30
MAX_BACKOFF = 3600


def backoff(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed attempt: 30, 60, 120, ... <= 1 h."""
    return int(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** max(0, attempts - 1)))


def _claimable(now: int, lease: int):  # type: ignore[no-untyped-def]
    return and_(AlertEvent.processed_at.is_(None),
                or_(AlertEvent.claimed_at.is_(None), AlertEvent.claimed_at < now - lease))


def claim_due(engine: Engine, now: int, *, token: str | None = None, limit: int = 100,
              lease: int = LEASE_SECONDS) -> tuple[str, list[dict[str, Any]]]:
    """Atomically claim up to `limit` due events; returns (claim token, the events).
    The claim is committed before anything is sent."""
    token = token or uuid.uuid4().hex
    with engine.begin() as conn:
        due = (select(AlertEvent.id)
               .where(_claimable(now, lease), AlertEvent.next_attempt_at <= now)
               .order_by(AlertEvent.id).limit(limit)).scalar_subquery()
        conn.execute(update(AlertEvent)
                     .where(AlertEvent.id.in_(due), _claimable(now, lease))
                     .values(claimed_at=now, claim_token=token))
        rows = conn.execute(select(AlertEvent).where(AlertEvent.claim_token == token,
                                                     AlertEvent.processed_at.is_(None))
                            .order_by(AlertEvent.id)).mappings().all()
    return token, [dict(row) for row in rows]


def subscribed(channel: Channel, event: dict[str, Any]) -> bool:
    if event["severity"] not in channel.severity:
        return False
    return channel.models is None or event["payload"]["model"] in channel.models


def _already_sent(engine: Engine, event_id: int) -> set[str]:
    with engine.begin() as conn:
        rows = conn.execute(select(AlertDelivery.channel).where(
            AlertDelivery.event_id == event_id, AlertDelivery.status == "sent")).scalars().all()
    return set(rows)


def _record(engine: Engine, event_id: int, channel: str, attempt: int, status: str,
            error: str | None, started: float, now: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(AlertDelivery).values(
            event_id=event_id, channel=channel, attempt=attempt, status=status, error=error,
            duration_ms=round((time.monotonic() - started) * 1000, 1), created_at=now))


def _finish(engine: Engine, event: dict[str, Any], token: str, now: int, outcome: str | None,
            attempts: int) -> None:
    values: dict[str, Any]
    if outcome is not None:
        values = {"processed_at": now, "outcome": outcome, "attempts": attempts}
    else:
        values = {"attempts": attempts, "next_attempt_at": now + backoff(attempts),
                  "claimed_at": None, "claim_token": None}
    with engine.begin() as conn:
        # only the holder of the claim may settle it (a stale holder whose lease expired may not)
        conn.execute(update(AlertEvent).where(AlertEvent.id == event["id"],
                                              AlertEvent.claim_token == token).values(**values))


def deliver_event(engine: Engine, config: MonitorConfig, event: dict[str, Any], token: str,
                  now: int, silences: list[dict[Any, Any]]) -> dict[str, int]:
    """Send one claimed event to its channels and settle it. Returns counts."""
    counts = {"sent": 0, "failed": 0, "silenced": 0}
    attempt = int(event["attempts"]) + 1
    channels = [c for c in config.channels if subscribed(c, event)]
    record = event["payload"]
    if not channels:
        _finish(engine, event, token, now, "no_channel", attempt)
        return counts
    if any(silence_matches(s, record) for s in silences):
        for channel in channels:
            _record(engine, event["id"], channel.label, attempt, "silenced", None, time.monotonic(), now)
        _finish(engine, event, token, now, "silenced", attempt)
        counts["silenced"] += 1
        return counts
    done = _already_sent(engine, event["id"])
    retry, permanent = False, False
    for channel in channels:
        if channel.label in done:
            continue
        started = time.monotonic()
        try:
            send(channel, event, config)
        except TransportError as error:
            status = "failed_permanently" if error.permanent else "failed"
            _record(engine, event["id"], channel.label, attempt, status, str(error)[:2000], started, now)
            log.warning("alert event %s to %s failed (%s): %s", event["id"], channel.label,
                        "permanent" if error.permanent else f"attempt {attempt}", error)
            counts["failed"] += 1
            retry |= not error.permanent
            permanent |= error.permanent
            continue
        except Exception as error:  # noqa: BLE001 - a bug in one channel must not stop the others
            _record(engine, event["id"], channel.label, attempt, "failed", f"{type(error).__name__}: {error}"[:2000], started, now)
            log.exception("alert event %s to %s crashed", event["id"], channel.label)
            counts["failed"] += 1
            retry = True
            continue
        _record(engine, event["id"], channel.label, attempt, "sent", None, started, now)
        counts["sent"] += 1
    if retry and attempt < MAX_ATTEMPTS:
        _finish(engine, event, token, now, None, attempt)
    else:
        _finish(engine, event, token, now, "failed" if (retry or permanent) else "sent", attempt)
    return counts


def deliver_pending(engine: Engine, config: MonitorConfig, now: int | None = None, *,
                    limit: int = 100, lease: int = LEASE_SECONDS) -> dict[str, int]:
    """Deliver every due event to every subscribed channel; returns counts
    (events, sent, failed, silenced). Safe to run concurrently and after a crash."""
    now = now_epoch() if now is None else int(now)
    totals = {"events": 0, "sent": 0, "failed": 0, "silenced": 0}
    token, events = claim_due(engine, now, limit=limit, lease=lease)
    if not events:
        return totals
    with engine.begin() as conn:
        silences = active_silences(conn, now).to_dict("records")
    for event in events:
        totals["events"] += 1
        for key, value in deliver_event(engine, config, event, token, now, silences).items():
            totals[key] += value
    return totals
