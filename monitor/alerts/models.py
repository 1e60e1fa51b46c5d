"""Tables of the alerts domain (migration: monitor/migrations/versions/20261128_0004_alert_tables.py).

- `alert_series`: the state machine of one series, keyed by its fingerprint
  (model, rule, class, segment, value): status ok | insufficient_data | pending | firing,
  the streak of consecutive evaluations towards the next transition and the last window end
  evaluated. One row per series ever evaluated (healthchecks' Check).
- `alerts`: one row per incident (pending -> firing -> resolved); a new incident of the same
  series after a resolve is a new row with the same fingerprint.
- `alert_events`: the outbox (healthchecks' Flip): a state change that should notify. The
  sender claims rows atomically (`claimed_at`, `claim_token`), and marks them processed.
- `alert_deliveries`: every attempt to send an event to one channel (healthchecks'
  Notification), with its error. A (event, channel) with a `sent` row is never sent again.
- `alert_silences`: time-bound mutes; None in a matcher column matches anything.
- `alerts.incident_id`, `alert_events.incident_id` (migration 0007): the incident an alert
  belongs to (`monitor.incidents.models`), and the incident an event notifies about.

Data time (window ends) and clock time are integer epoch seconds (UTC), like the rest of the
engine, so that lease and backoff arithmetic is the same SQL on every backend.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base


class AlertSeries(Base):
    __tablename__ = "alert_series"
    __table_args__ = (Index("ux_alert_series_fingerprint", "fingerprint", unique=True),
                      Index("ix_alert_series_model_rule", "model_id", "rule"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(100))
    class_name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(400))
    segment_value: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    streak: Mapped[int] = mapped_column(Integer, default=0)
    last_end: Mapped[int | None] = mapped_column(BigInteger)
    last_value: Mapped[float | None] = mapped_column(Float)
    last_support: Mapped[int | None] = mapped_column(BigInteger)
    alert_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_model_state", "model_id", "state"),
                      Index("ix_alerts_fingerprint", "fingerprint"),
                      Index("ix_alerts_incident", "incident_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(100))
    class_name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(400))
    segment_value: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))  # pending | firing | resolved
    severity: Mapped[str] = mapped_column(String(20))  # warning | critical
    window: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int] = mapped_column(BigInteger)  # data time: first window end in breach
    fired_at: Mapped[int | None] = mapped_column(BigInteger)  # data time
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)  # data time
    fired_as_of: Mapped[int | None] = mapped_column(BigInteger)  # the clock when it fired
    value: Mapped[float | None] = mapped_column(Float)
    reference_value: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    support: Mapped[int | None] = mapped_column(BigInteger)
    p_value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    last_notified_at: Mapped[int | None] = mapped_column(BigInteger)  # data time
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[int | None] = mapped_column(BigInteger)
    ack_comment: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    incident_id: Mapped[int | None] = mapped_column(Integer)  # its incident (migration 0007)


class AlertEvent(Base):
    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_due", "processed_at", "next_attempt_at"),
                      Index("ix_alert_events_alert", "alert_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # firing | resolved | reminder | escalated
    severity: Mapped[str] = mapped_column(String(20))
    data_time: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the alert as it was at the change
    created_at: Mapped[int] = mapped_column(BigInteger)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[int | None] = mapped_column(BigInteger)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(String(20))  # sent | failed | given_up | silenced | no_channel | inhibited
    # an incident's notification (migration 0007): `alert_id` is then its first member alert
    incident_id: Mapped[int | None] = mapped_column(Integer)


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_event", "event_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(400))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # sent | failed | failed_permanently | given_up | silenced
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AlertSilence(Base):
    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str | None] = mapped_column(String(200))
    class_name: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(400))
    segment_value: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[int] = mapped_column(BigInteger)
    ends_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
