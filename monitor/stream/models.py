"""The stream consumers' table (migration: monitor/migrations/versions/20261202_0010_stream.py).

`stream_consumers`: one row per (model, stream, durable consumer), shared by every process of
that consumer. Its counters grow in the same transaction as the batch they count, so they are
exact: `messages` counts deliveries committed (a redelivered message counts again, and in
`redelivered`), `predictions` and `labels` the records accepted, `skipped` those already stored
(redeliveries land here), `rejected` the records and messages refused. `pending` (messages
not yet delivered to any process), `ack_pending`, `lag_seconds` (commit time minus the
publish time of the oldest message of the last batch) and `last_batch_at` describe the lag;
`/metrics` exports them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base


class StreamConsumer(Base):
    __tablename__ = "stream_consumers"
    __table_args__ = (Index("ux_stream_consumers_model_consumer", "model_id", "stream", "consumer", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))  # jetstream
    stream: Mapped[str] = mapped_column(String(200))
    consumer: Mapped[str] = mapped_column(String(200))
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    ack_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    lag_seconds: Mapped[float | None] = mapped_column(Float)
    last_batch_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    redelivered: Mapped[int] = mapped_column(BigInteger, default=0)
    predictions: Mapped[int] = mapped_column(BigInteger, default=0)
    labels: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
