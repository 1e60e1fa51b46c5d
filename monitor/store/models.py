"""Core tables: models, slices, the file ledger, rejects, raw rows and the count aggregates.

Aggregates are counts per (model, bucket of the prediction's time, slice); a slice is one
combination of segment values. Rates are never stored (docs/design.md principle 1). Data time is
integer epoch seconds (UTC) so that bucket arithmetic is the same SQL on every backend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, UTCDateTime, utcnow


class MonitoredModel(Base):
    """One configured model. Classes may be learned from the reference."""

    __tablename__ = "monitored_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    classes: Mapped[list[str] | None] = mapped_column(JSON)
    minority_classes: Mapped[list[str] | None] = mapped_column(JSON)
    segments: Mapped[list[str] | None] = mapped_column(JSON)
    reference_fingerprint: Mapped[str | None] = mapped_column(String(200))
    reference_rows: Mapped[int | None] = mapped_column(BigInteger)
    reference_prepared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Slice(Base):
    """One combination of segment values of a model (the finest grain of the counts)."""

    __tablename__ = "slices"
    __table_args__ = (Index("ux_slices_model_key", "model_id", "key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(Text)  # canonical JSON of {attribute: value}


class SliceValue(Base):
    """The value of one segment attribute in a slice; joined to sum counts by attribute."""

    __tablename__ = "slice_values"
    __table_args__ = (Index("ix_slice_values_attr", "attribute", "value"),)

    slice_id: Mapped[int] = mapped_column(
        ForeignKey("slices.id", ondelete="CASCADE"), primary_key=True
    )
    attribute: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IngestedFile(Base):
    """The ledger: one row per (model, kind, path). A file is re-read when its content
    changed or when rows in it were not yet visible at the last read (`--as-of`)."""

    __tablename__ = "ingested_files"
    __table_args__ = (Index("ux_ingested_files_path", "model_id", "kind", "path", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # predictions | labels
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # inode, ctime and a hash of head and tail: changes with any write or replacement, even
    # one that keeps the size and restores the mtime (see monitor.ingest.ledger.fingerprint)
    fingerprint: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(20))  # done | partial | failed
    error: Mapped[str | None] = mapped_column(Text)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_waiting: Mapped[int] = mapped_column(BigInteger, default=0)
    # for a partial file: the earliest data time of a row not yet visible (read again then)
    visible_until: Mapped[int | None] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RejectedRow(Base):
    """A row that was not ingested, with the field and the reason (kept for inspection)."""

    __tablename__ = "rejected_rows"
    __table_args__ = (Index("ix_rejected_rows_model_source", "model_id", "kind", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)  # file path, or "api"
    row_number: Mapped[int | None] = mapped_column(BigInteger)  # 1-based data row in the file
    field: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Prediction(Base):
    """One visible prediction (slim: no features; those live in histograms)."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_model_bucket", "model_id", "bucket_start"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("monitored_models.id", ondelete="CASCADE"), primary_key=True
    )
    prediction_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    bucket_start: Mapped[int] = mapped_column(BigInteger)
    slice_id: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[int | None] = mapped_column(Integer)
    # the scores the rolling recalibration fits on (monitor.estimation.recalibrate.pack_scores:
    # a big-endian float64 per class, model order), NULL when the estimation keeps none
    # (migration 0017; they had a table of their own, estimation_scores, before)
    scores: Mapped[bytes | None] = mapped_column(LargeBinary)


class Label(Base):
    """The current ground truth of a prediction. `applied_label` is what the counts hold (None:
    never counted, so counting it records the prediction's label arrival); `needs_apply` marks labels not yet (or no longer correctly) counted, e.g. pending ones
    whose prediction has not arrived."""

    __tablename__ = "labels"
    # the labels waiting to be counted, by id: a small index (most labels are counted on
    # arrival) that a batch probes for the ids it stored (migration 0015)
    __table_args__ = (Index("ix_labels_waiting", "model_id", "prediction_id",
                            postgresql_where=text("needs_apply"), sqlite_where=text("needs_apply = 1")),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("monitored_models.id", ondelete="CASCADE"), primary_key=True
    )
    prediction_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    label_ts: Mapped[int] = mapped_column(BigInteger)
    applied_label: Mapped[str | None] = mapped_column(String(200))
    needs_apply: Mapped[bool] = mapped_column(Boolean, default=True)
    file_id: Mapped[int | None] = mapped_column(Integer)


class ConfusionCountColumns:
    """Columns of `confusion_counts` and of its daily roll-up."""

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    true_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    pred_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ConfusionCount(ConfusionCountColumns, Base):
    """Labelled predictions per (bucket of the prediction, slice, true class, predicted)."""

    __tablename__ = "confusion_counts"


class ConfusionCountDaily(ConfusionCountColumns, Base):
    """`confusion_counts` summed per UTC day (`bucket_start` is the day's start): kept by
    `monitor.store.bulk.add_counts` in the same transaction, read for whole-day windows."""

    __tablename__ = "confusion_counts_daily"


class PredictionCountColumns:
    """Columns of `prediction_counts` and of its daily roll-up."""

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pred_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class PredictionCount(PredictionCountColumns, Base):
    """All predictions (labelled or not) per (bucket, slice, predicted class)."""

    __tablename__ = "prediction_counts"


class PredictionCountDaily(PredictionCountColumns, Base):
    """`prediction_counts` summed per UTC day (see ConfusionCountDaily)."""

    __tablename__ = "prediction_counts_daily"


class LabelArrivalCount(Base):
    """Predictions per (bucket, delay bin) by how long their first label took to arrive.
    `delay_bin` is the delay in hours rounded up to a power of two (0, 1, 2, 4, ...).
    With prediction_counts this gives the usual label coverage at a given age (maturity)."""

    __tablename__ = "label_arrival_counts"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delay_bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class ReferenceCount(Base):
    """Confusion counts of the reference data per slice (no time)."""

    __tablename__ = "reference_counts"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    true_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    pred_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class IngestRun(Base):
    """One scheduler tick or `monitor ingest`, with its summary (shown on the Data page)."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    as_of: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))  # running | ok | failed
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
