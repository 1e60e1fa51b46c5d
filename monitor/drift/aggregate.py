"""Ingest hooks of the drift domain (see monitor/ingest/hooks.py).

`on_reference` fixes the bins of every monitored feature from the reference and stores the
reference histograms per (chunk, slice); `on_predictions` adds each batch of predictions to
`drift_histograms` per (drift bucket, slice, feature, bin) with an additive upsert, so drift
over any window is a sum of stored counts and raw feature values are never re-read.

Pseudo-features: `__prediction__` (the predicted-class mix, a categorical over the model's
classes) and `__score_<class>__` for each score column present in the reference.

Bins stay fixed once predictions were binned with them: reloading the reference then only
replaces the reference histograms (binned with the existing bins) and adds bins for new
features. With `reference_period` (no reference file), the bins come from the first batch
that holds predictions inside the period and the reference histograms are read at query time
as sums over the period; predictions ingested *before* that batch are not in the histograms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.drift.binning import (
    PREDICTION,
    FeatureBins,
    categorical_bins,
    infer_kind,
    numeric_bins,
    score_feature,
)
from monitor.drift.models import (
    HISTOGRAMS,
    REFERENCE_HISTOGRAMS,
    DriftFeature,
    DriftHistogram,
    DriftReferenceHistogram,
)
from monitor.store.bulk import add_counts
from monitor.timeutil import parse_duration, parse_time

HISTOGRAM_KEYS = ["model_id", "bucket_start", "slice_id", "feature", "bin"]
REFERENCE_KEYS = ["model_id", "chunk", "slice_id", "feature", "bin"]
DENSE_LIMIT = 20_000_000


def monitored_features(ctx: ModelContext, columns: pd.Index | list[str]) -> list[str]:
    """Configured features, then the predicted-class mix, then the scores present."""
    scores = [score_feature(c) for c in ctx.classes if f"score_{c}" in columns]
    return [*ctx.features, PREDICTION, *scores]


def feature_column(frame: pd.DataFrame, feature: str) -> pd.Series:
    """The values of `feature` in a canonical batch (all missing when the column is absent)."""
    if feature == PREDICTION:
        return frame["predicted"]
    if feature.startswith("__score_") and feature.endswith("__"):
        name = "score_" + feature[len("__score_"):-2]
        return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
    if feature in frame:
        return frame[feature]
    return pd.Series(np.nan, index=frame.index)


def build_bins(ctx: ModelContext, frame: pd.DataFrame, features: list[str], *, start: int = 0,
               source: str = "reference") -> list[FeatureBins]:
    settings = ctx.config.drift
    out = []
    for offset, feature in enumerate(features):
        values = feature_column(frame, feature)
        if feature == PREDICTION:
            classes = ctx.classes or None
            out.append(categorical_bins(feature, values, position=start + offset,
                                        top=settings.top_categories, categories=classes, source=source))
        elif feature.startswith("__score_") or infer_kind(values) == "numeric":
            out.append(numeric_bins(feature, values, position=start + offset,
                                    fine_bins=settings.fine_bins, bins=settings.bins, source=source))
        else:
            out.append(categorical_bins(feature, values, position=start + offset,
                                        top=settings.top_categories, source=source))
    return out


def store_bins(conn: Connection, model_id: int, bins: list[FeatureBins]) -> None:
    if not bins:
        return
    conn.execute(insert(DriftFeature), [
        {
            "model_id": model_id, "feature": b.feature, "position": b.position, "kind": b.kind,
            "edges": None if b.edges is None else [float(e) for e in b.edges],
            "categories": b.categories, "coarse": [int(c) for c in b.coarse],
            "reference_mean": b.reference_mean, "reference_std": b.reference_std,
            "source": b.source, "details": None,
        }
        for b in bins
    ])


def load_bins(conn: Connection, model_id: int) -> list[FeatureBins]:
    """The stored bins of a model, in feature order."""
    rows = conn.execute(
        select(DriftFeature.__table__).where(DriftFeature.model_id == model_id)
        .order_by(DriftFeature.position)
    ).all()
    return [
        FeatureBins(
            feature=r.feature, kind=r.kind, position=r.position,
            edges=None if r.edges is None else np.asarray(r.edges, dtype=np.float64),
            categories=r.categories, coarse=np.asarray(r.coarse, dtype=np.int64),
            reference_mean=r.reference_mean, reference_std=r.reference_std, source=r.source,
        )
        for r in rows
    ]


def histogram_counts(frame: pd.DataFrame, bins: list[FeatureBins], group_columns: list[str]) -> pd.DataFrame:
    """Counts and value sums per (group columns, feature, bin), vectorised per feature."""
    columns = [*group_columns, "feature", "bin", "n", "total"]
    if frame.empty or not bins:
        return pd.DataFrame(columns=columns)
    # mixed-radix group code from per-column factorisations (a MultiIndex is much slower here)
    levels = [pd.factorize(frame[column]) for column in group_columns]
    group_codes = np.zeros(len(frame), dtype=np.int64)
    for codes, uniques in levels:
        group_codes = group_codes * len(uniques) + codes
    n_groups = int(np.prod([len(uniques) for _, uniques in levels]))
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for feature in bins:
        codes, values = feature.assign(feature_column(frame, feature.feature))
        key = group_codes * feature.n_bins + codes
        size = n_groups * feature.n_bins
        if size <= DENSE_LIMIT:  # a counting pass instead of a sort: the common case
            dense = np.bincount(key, minlength=size)
            unique = np.flatnonzero(dense)
            counts = dense[unique]
            totals = np.bincount(key, weights=values, minlength=size)[unique]
        else:
            unique, inverse = np.unique(key, return_inverse=True)
            counts = np.bincount(inverse)
            totals = np.bincount(inverse, weights=values)
        remainder = unique // feature.n_bins
        for column, (_, uniques) in zip(reversed(group_columns), reversed(levels), strict=True):
            pieces[column].append(np.asarray(uniques)[remainder % len(uniques)])
            remainder = remainder // len(uniques)
        pieces["feature"].append(np.full(len(unique), feature.feature, dtype=object))
        pieces["bin"].append(unique % feature.n_bins)
        pieces["n"].append(counts)
        pieces["total"].append(totals)
    # one frame at the end: building one per feature costs more than the counting itself
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in pieces.items()})[columns]


def reference_chunks(reference: pd.DataFrame, chunks: int) -> np.ndarray:
    """Chunk index of each reference row: consecutive equal slices in time order when the
    reference has timestamps, else in file order (used for reference-derived thresholds)."""
    n = len(reference)
    if "ts" in reference and reference["ts"].notna().any():
        order = np.argsort(pd.to_numeric(reference["ts"], errors="coerce").to_numpy(na_value=np.inf),
                           kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
    else:
        rank = np.arange(n)
    return (rank * chunks) // max(n, 1)


def _has_histograms(conn: Connection, model_id: int) -> bool:
    found = conn.execute(
        select(func.count()).select_from(
            select(DriftHistogram.model_id).where(DriftHistogram.model_id == model_id).limit(1).subquery()
        )
    ).scalar_one()
    return bool(found)


def on_reference(conn: Connection, ctx: ModelContext, reference: pd.DataFrame) -> None:
    """Fix the bins (unless predictions are already binned) and store reference histograms."""
    features = monitored_features(ctx, reference.columns)
    conn.execute(delete(DriftReferenceHistogram).where(DriftReferenceHistogram.model_id == ctx.model_id))
    existing = load_bins(conn, ctx.model_id)
    if existing and _has_histograms(conn, ctx.model_id):
        known = {b.feature for b in existing}
        new = build_bins(ctx, reference, [f for f in features if f not in known], start=len(existing))
        store_bins(conn, ctx.model_id, new)
        bins = [b for b in existing + new if b.feature in features]
    else:
        conn.execute(delete(DriftFeature).where(DriftFeature.model_id == ctx.model_id))
        bins = build_bins(ctx, reference, features)
        store_bins(conn, ctx.model_id, bins)
    if reference.empty:
        return
    # chunks only serve reference-derived thresholds: one chunk otherwise keeps the table small
    settings = ctx.config.drift
    chunks = settings.reference_chunks if settings.thresholds == "reference" else 1
    frame = pd.DataFrame({
        "chunk": reference_chunks(reference, chunks),
        "slice_id": reference["slice_id"].to_numpy(),
    }, index=reference.index)
    frame = pd.concat([frame, reference.drop(columns=["chunk", "slice_id"], errors="ignore")], axis=1)
    counts = histogram_counts(frame, bins, ["chunk", "slice_id"])
    counts.insert(0, "model_id", ctx.model_id)
    add_counts(conn, REFERENCE_HISTOGRAMS, counts, key_columns=REFERENCE_KEYS,
               value_columns=["n", "total"])


def reference_period_bounds(ctx: ModelContext) -> tuple[int, int] | None:
    period = ctx.config.reference_period
    if not period or ctx.config.reference:
        return None
    return parse_time(period[0]), parse_time(period[1])


def on_predictions(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> None:
    """Add a batch of visible predictions to the histograms of their drift bucket and slice."""
    if rows.empty:
        return
    bins = load_bins(conn, ctx.model_id)
    if not bins:
        bounds = reference_period_bounds(ctx)
        if bounds is None:
            return  # no reference yet: nothing to compare with (documented in docs/drift.md)
        ts = pd.to_numeric(rows["ts"], errors="coerce")
        inside = rows[(ts >= bounds[0]) & (ts < bounds[1])]
        if inside.empty:
            return
        bins = build_bins(ctx, inside, monitored_features(ctx, rows.columns), source="period")
        store_bins(conn, ctx.model_id, bins)
    grain = parse_duration(ctx.config.drift.bucket)
    seconds = pd.to_numeric(rows["ts"], errors="coerce").to_numpy(dtype=np.float64)
    frame = rows.drop(columns=["bucket_start"], errors="ignore").assign(
        bucket_start=(np.floor(seconds / grain) * grain).astype(np.int64)
    )
    counts = histogram_counts(frame, bins, ["bucket_start", "slice_id"])
    counts.insert(0, "model_id", ctx.model_id)
    add_counts(conn, HISTOGRAMS, counts, key_columns=HISTOGRAM_KEYS,
               value_columns=["n", "total"])
