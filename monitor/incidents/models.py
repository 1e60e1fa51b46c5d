"""Tables of the incidents domain (migration: monitor/migrations/versions/20261202_0007_incidents.py).

- `incidents`: one row per cause (docs/incidents.md): the member alerts of one model and
  class that fired together, grouped under the root-cause slice the slice search named
  (`segment`/`segment_value`, `*` when the drop is global). `state` open | resolved;
  `severity` the highest member's; `started_at`, `fired_at`, `resolved_at` are data times
  (window ends); `value` .. `support` describe the cause slice at `fired_at`; `explains` the
  member series (`segment=value`), `evidence` short strings. `last_notified_at` is the wall
  clock of the last notification (reminders go by the clock, never during a backfill).
  Acknowledged and silenced like alerts; `silenced_until` is a mute of this incident.

The alerts domain points at it (`alerts.incident_id`, `alert_events.incident_id`), not the
other way round: `monitor.alerts` imports this package, never the reverse.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_model_state", "model_id", "state"),
                      Index("ix_incidents_fingerprint", "fingerprint"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))  # model, class, metric, cause slice
    state: Mapped[str] = mapped_column(String(20))  # open | resolved
    severity: Mapped[str] = mapped_column(String(20))  # warning | critical
    metric: Mapped[str] = mapped_column(String(100))
    class_name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(400))  # the root cause; "*" when global
    segment_value: Mapped[str] = mapped_column(Text)
    window: Mapped[int] = mapped_column(BigInteger)
    explains: Mapped[list[str]] = mapped_column(JSON)  # member series, "segment=value"
    started_at: Mapped[int] = mapped_column(BigInteger)  # data time: earliest member start
    fired_at: Mapped[int] = mapped_column(BigInteger)  # data time: the first member fired
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)  # data time: the last member resolved
    fired_as_of: Mapped[int | None] = mapped_column(BigInteger)  # the clock when it opened
    value: Mapped[float | None] = mapped_column(Float)
    reference_value: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    support: Mapped[int | None] = mapped_column(BigInteger)
    excess_fn: Mapped[float | None] = mapped_column(Float)
    share: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    last_notified_at: Mapped[int | None] = mapped_column(BigInteger)  # wall clock
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[int | None] = mapped_column(BigInteger)
    ack_comment: Mapped[str | None] = mapped_column(Text)
    silenced_until: Mapped[int | None] = mapped_column(BigInteger)  # wall clock
    silenced_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
