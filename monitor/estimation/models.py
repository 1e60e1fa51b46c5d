"""Tables of the estimation domain (owned by that package; migration in monitor/migrations/versions).

- `estimation_calibrators`: one row per (model, class) fitted on the reference: the isotonic
  map (thresholds), the expected calibration error before/after on a held-out part of the
  reference, whether calibration is applied and whether the raw scores are badly calibrated.
  Stored so that a restart never refits.
- `expected_counts`: expected one-vs-rest confusion counts per (bucket of the prediction's
  time, slice, class), computed from calibrated scores without labels, kept additively like
  the realized `confusion_counts`. `var_tp` / `var_fn` are sums of p(1 - p): the variances of
  the Poisson-binomial tp and fn counts, which the read path turns into intervals.
- `estimation_calibrations` (issue 18): every calibration the estimates were made with, the
  reference one and each rolling refit on matured labels, with its fit span (prediction
  times), number of labels and positives and the per-class maps, so that a past estimate can
  be traced and reproduced; and each due refit skipped for too few labels (kind `skipped`).
- the scores a rolling calibration is fitted on, once their labels are in, are kept with
  their prediction (`predictions.scores`, migration 0017; a table of their own,
  `estimation_scores`, before) and cleared at each refit once older than any future fit span.
- `calibration_usage`: scored predictions per (bucket, calibration used): additive, so a
  window's calibrations are a SUM, like the counts.
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
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base, UTCDateTime, utcnow
from monitor.store.rollup import register_daily


class EstimationCalibrator(Base):
    """Per-class calibration fitted on the reference (one-vs-rest isotonic regression)."""

    __tablename__ = "estimation_calibrators"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("monitored_models.id", ondelete="CASCADE"), primary_key=True
    )
    class_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(20))  # isotonic | none
    applied: Mapped[bool] = mapped_column(Boolean)
    # isotonic map as {"x": [...], "y": [...]}: calibrated = interp(score, x, y)
    thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ece_before: Mapped[float | None] = mapped_column(Float)
    ece_after: Mapped[float | None] = mapped_column(Float)
    badly_calibrated: Mapped[bool] = mapped_column(Boolean)
    n_reference: Mapped[int] = mapped_column(BigInteger)
    n_positive: Mapped[int] = mapped_column(BigInteger)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExpectedCountColumns:
    """Columns of `expected_counts` and of its daily roll-up."""

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    n_scored: Mapped[int] = mapped_column(BigInteger, default=0)  # rows with every score
    n_predicted: Mapped[int] = mapped_column(BigInteger, default=0)  # of those, predicted class
    exp_tp: Mapped[float] = mapped_column(Float, default=0.0)
    exp_fn: Mapped[float] = mapped_column(Float, default=0.0)
    exp_fp: Mapped[float] = mapped_column(Float, default=0.0)
    exp_tn: Mapped[float] = mapped_column(Float, default=0.0)
    var_tp: Mapped[float] = mapped_column(Float, default=0.0)
    var_fn: Mapped[float] = mapped_column(Float, default=0.0)


class ExpectedCount(ExpectedCountColumns, Base):
    """Expected confusion counts per (model, bucket, slice, class) from calibrated scores."""

    __tablename__ = "expected_counts"


class ExpectedCountDaily(ExpectedCountColumns, Base):
    """`expected_counts` summed per UTC day (kept and read like `confusion_counts_daily`)."""

    __tablename__ = "expected_counts_daily"


# bulk writes to expected_counts keep this twin, and whole-day windows read it
register_daily(ExpectedCount, ExpectedCountDaily)


class EstimationCalibration(Base):
    """One calibration of a model: `kind` reference (fitted on the reference) or rolling
    (fitted on the mature labelled predictions with fit_start <= ts < fit_end). `maps` holds
    per class {"x": [...], "y": [...]} (null: raw scores); a rolling calibration is used for
    predictions at or after its fit_end."""

    __tablename__ = "estimation_calibrations"
    __table_args__ = (Index("ix_estimation_calibrations_model_end", "model_id", "fit_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("monitored_models.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # reference | rolling | skipped
    fit_start: Mapped[int | None] = mapped_column(BigInteger)  # epoch s, prediction times
    fit_end: Mapped[int | None] = mapped_column(BigInteger)
    as_of: Mapped[int | None] = mapped_column(BigInteger)  # the clock when it was fitted
    n_labels: Mapped[int] = mapped_column(BigInteger)
    n_positive: Mapped[dict[str, Any]] = mapped_column(JSON)  # class -> labelled positives
    maps: Mapped[dict[str, Any]] = mapped_column(JSON)  # class -> {"x", "y"} or null
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalibrationUsage(Base):
    """Scored predictions per (model, bucket, calibration): which calibration a window used."""

    __tablename__ = "calibration_usage"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    calibration_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_scored: Mapped[int] = mapped_column(BigInteger, default=0)
