"""Tables of the drift domain (owned by that package; migration in monitor/migrations/versions).

- `drift_features`: the fixed bins of each monitored feature, defined once from the reference
  (or from the first batch of the reference period), so that every histogram of that model
  uses the same bins.
- `drift_reference_histograms`: counts of the reference per (chunk, slice, feature, bin);
  chunks (only with `thresholds = "reference"`, else one chunk 0) are consecutive slices of
  the reference (in time order when it has timestamps),
  used for reference-derived thresholds. Empty with `reference_period`: the reference is then
  read from `drift_histograms` over the period.
- `drift_histograms`: counts of visible predictions per (drift bucket, slice, feature, bin),
  incremented at ingest. `total` is the sum of the values in the bin (numeric features), so
  the mean of a bin is known and Wasserstein distances from histograms are close to the raw.

Bin codes: 0 = missing; numeric features 1..E+1 for E fine edges (open at both ends);
categorical features 1..C for the top categories and C+1 for "other" (also unseen ones).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.base import Base


class DriftFeature(Base):
    """Bin definition of one feature (or pseudo-feature) of a model."""

    __tablename__ = "drift_features"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # stable order (config order)
    kind: Mapped[str] = mapped_column(String(20))  # numeric | categorical
    # numeric: fine edges; categorical: top categories (bin i+1 = categories[i])
    edges: Mapped[list[float] | None] = mapped_column(JSON)
    categories: Mapped[list[str] | None] = mapped_column(JSON)
    coarse: Mapped[list[int]] = mapped_column(JSON)  # fine bin code -> coarse bin (psi, js)
    reference_mean: Mapped[float | None] = mapped_column(Float)
    reference_std: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))  # reference | period
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DriftReferenceHistogram(Base):
    """Reference counts per (chunk, slice, feature, bin)."""

    __tablename__ = "drift_reference_histograms"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class DriftHistogram(Base):
    """Prediction counts per (drift bucket, slice, feature, bin), incremented at ingest."""

    __tablename__ = "drift_histograms"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    slice_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


FEATURES = cast(Table, DriftFeature.__table__)
REFERENCE_HISTOGRAMS = cast(Table, DriftReferenceHistogram.__table__)
HISTOGRAMS = cast(Table, DriftHistogram.__table__)
