"""Drift records (docs/contract.md §3 `drift`) from stored histograms: the read path.

`drift_frame` sums `drift_histograms` into rolling windows (`monitor.store.windows`), sums the
reference histograms per segment value, and compares them with every method of the feature's
kind (`monitor.drift.methods`). Nothing here reads raw feature values.

Thresholds (`[models.drift]`, docs/drift.md):
- `thresholds = "fixed"`: psi > 0.2, js > 0.1, ks > 0.1, wasserstein > 0.1 (in reference
  standard deviations), chi2 p-value < 0.01.
- `thresholds = "reference"`: per feature, method and series, mean + `reference_sigmas` x std
  of the method's values for each of `reference_chunks` consecutive chunks of the reference
  against the whole reference (NannyML's approach). It reflects how much the reference itself
  varies, so large windows do not flag trivial shifts. chi2 keeps its p-value level. With fewer
  than three usable chunks a series falls back to the fixed threshold.
A record is `drifted` only with a value, at least `min_rows` rows in the window and a
non-empty reference for its series; windows with no rows give null values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.config import DriftSettings
from monitor.context import ModelContext
from monitor.drift import methods
from monitor.drift.aggregate import load_bins, reference_period_bounds
from monitor.drift.binning import FeatureBins
from monitor.drift.models import HISTOGRAMS, REFERENCE_HISTOGRAMS
from monitor.store.slices import group_codes, series_sums
from monitor.store.windows import (
    OVERALL,
    WindowSpec,
    parse_segment_option,
    segment_label,
    windowed_counts,
)
from monitor.timeutil import ceil_to, floor_to, format_duration, iso_series, parse_duration

COLUMNS = ["model", "window", "end", "feature", "segment", "segment_value", "method", "value",
           "threshold", "drifted", "n_current", "n_reference"]
METHOD_ORDER = {name: i for i, name in enumerate(methods.DRIFT_METHODS.names())}
SERIES = ["segment", "segment_value"]
KEYS = ["feature", "bin"]
VALUES = ["n", "total"]


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS)


def drift_bucket(ctx: ModelContext) -> int:
    return parse_duration(ctx.config.drift.bucket)


def check_spec(ctx: ModelContext, spec: WindowSpec) -> None:
    grain = drift_bucket(ctx)
    if spec.window % grain or spec.step % grain:
        raise ValueError(
            f"drift histograms are kept per {ctx.config.drift.bucket}: use a window and a step "
            f"that are multiples of it (got window {format_duration(spec.window)}, "
            f"step {format_duration(spec.step)})"
        )


def select_bins(conn: Connection, ctx: ModelContext, features: Sequence[str] | None) -> list[FeatureBins]:
    configured = set(ctx.features)
    # a feature dropped from the config keeps its stored bins but is no longer reported
    bins = [b for b in load_bins(conn, ctx.model_id) if b.feature in configured or b.feature.startswith("__")]
    if not features:
        return bins
    known = {b.feature: b for b in bins}
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} (monitored: {', '.join(known) or 'none yet'})")
    return [known[f] for f in features]


def current_histograms(conn: Connection, ctx: ModelContext, spec: WindowSpec,
                       segment_sets: Sequence[tuple[str, ...]], ends: np.ndarray | None = None,
                       features: Sequence[str] | None = None) -> pd.DataFrame:
    """Window sums per (end, segment, segment_value, feature, bin): n and total (only
    `features` when given)."""
    return windowed_counts(conn, HISTOGRAMS, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                           key_columns=KEYS, value_columns=VALUES, ends=ends, bucket=drift_bucket(ctx),
                           only={"feature": list(features or [])}, float_columns=["total"])


def reference_histograms(conn: Connection, ctx: ModelContext,
                         segment_sets: Sequence[tuple[str, ...]]) -> pd.DataFrame:
    """Reference counts per (chunk, segment, segment_value, feature, bin): n and total."""
    bounds = reference_period_bounds(ctx)
    if bounds is not None:
        return _period_reference(conn, ctx, segment_sets, bounds)
    table = REFERENCE_HISTOGRAMS
    frames = [series_sums(conn, table, model_id=ctx.model_id, attributes=attributes, group=[table.c.chunk],
                          key_columns=KEYS, value_columns=VALUES) for attributes in segment_sets]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["chunk", *SERIES, *KEYS, *VALUES])


def _period_reference(conn: Connection, ctx: ModelContext, segment_sets: Sequence[tuple[str, ...]],
                      bounds: tuple[int, int]) -> pd.DataFrame:
    """The reference period as daily (drift bucket) sums, grouped into consecutive chunks."""
    grain = drift_bucket(ctx)
    start, end = floor_to(bounds[0], grain), ceil_to(bounds[1], grain)
    ends = np.arange(start + grain, end + 1, grain, dtype=np.int64)
    daily = current_histograms(conn, ctx, WindowSpec(grain, grain), segment_sets, ends=ends)
    if daily.empty:
        return pd.DataFrame(columns=["chunk", *SERIES, *KEYS, *VALUES])
    day = (daily["end"].to_numpy(dtype=np.int64) - ends[0]) // grain
    daily.insert(0, "chunk", (day * ctx.config.drift.reference_chunks) // len(ends))
    return (daily.groupby(["chunk", *SERIES, *KEYS], as_index=False)[VALUES].sum())


def _matrix(frame: pd.DataFrame, row_keys: list[str], n_bins: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Long (keys, bin, n, total) -> (row keys frame, counts[rows, bins], totals[rows, bins])."""
    codes, keys = group_codes(frame, row_keys)
    counts = np.zeros((len(keys), n_bins))
    totals = np.zeros((len(keys), n_bins))
    bins = frame["bin"].to_numpy(dtype=np.int64)
    np.add.at(counts, (codes, bins), frame["n"].to_numpy(dtype=np.float64))
    np.add.at(totals, (codes, bins), frame["total"].to_numpy(dtype=np.float64))
    return keys, counts, totals


def compare(bins: FeatureBins, reference: np.ndarray, current: np.ndarray,
            reference_totals: np.ndarray, current_totals: np.ndarray) -> dict[str, np.ndarray]:
    """Every method of the feature's kind for aligned rows of fine-bin counts."""
    return methods.compute(methods.Histograms(reference, current, reference_totals, current_totals,
                                              bins.coarse, bins.n_coarse, bins.reference_std), bins.kind)


def _reference_thresholds(bins: FeatureBins, series: pd.DataFrame, reference: pd.DataFrame,
                          settings: DriftSettings) -> dict[str, np.ndarray]:
    """Per series: mean + sigmas x std of each chunk's value against the whole reference."""
    chunks = settings.reference_chunks
    lookup = {tuple(k): i for i, k in enumerate(series.itertuples(index=False, name=None))}
    frame = reference[reference[SERIES].apply(tuple, axis=1).isin(lookup)] if len(reference) else reference
    fixed = {m: np.full(len(series), getattr(settings, m)) for m in methods.methods_for(bins.kind)}
    if frame.empty:
        return fixed
    index = np.array([lookup[k] for k in frame[SERIES].itertuples(index=False, name=None)])
    row = index * chunks + frame["chunk"].to_numpy(dtype=np.int64)
    per_chunk = np.zeros((len(series) * chunks, bins.n_bins))
    per_chunk_totals = np.zeros_like(per_chunk)
    np.add.at(per_chunk, (row, frame["bin"].to_numpy(dtype=np.int64)), frame["n"].to_numpy(dtype=float))
    np.add.at(per_chunk_totals, (row, frame["bin"].to_numpy(dtype=np.int64)), frame["total"].to_numpy(dtype=float))
    whole = per_chunk.reshape(len(series), chunks, -1).sum(axis=1)
    whole_totals = per_chunk_totals.reshape(len(series), chunks, -1).sum(axis=1)
    values = compare(bins, np.repeat(whole, chunks, axis=0), per_chunk,
                     np.repeat(whole_totals, chunks, axis=0), per_chunk_totals)
    out = {}
    for method, fixed_values in fixed.items():
        if method in methods.PVALUE_METHODS:
            out[method] = fixed_values
            continue
        grid = values[method].reshape(len(series), chunks)
        usable = np.isfinite(grid).sum(axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series: fixed below
            derived = np.nanmean(grid, axis=1) + settings.reference_sigmas * np.nanstd(grid, axis=1, ddof=1)
        out[method] = np.where(usable >= 3, derived, fixed_values)
    return out


def feature_records(bins: FeatureBins, current: pd.DataFrame, reference: pd.DataFrame,
                    settings: DriftSettings) -> pd.DataFrame:
    """Drift records of one feature for every (end, series) row of `current`."""
    rows, cur, cur_totals = _matrix(current, ["end", *SERIES], bins.n_bins)
    if len(reference):
        series, ref, ref_totals = _matrix(reference, SERIES, bins.n_bins)
    else:
        series, ref, ref_totals = pd.DataFrame(columns=SERIES), np.zeros((0, bins.n_bins)), np.zeros((0, bins.n_bins))
    position = {k: i for i, k in enumerate(series.itertuples(index=False, name=None))}
    index = np.array([position.get(k, -1) for k in rows[SERIES].itertuples(index=False, name=None)], dtype=np.int64)
    padded, padded_totals = np.vstack([ref, np.zeros((1, bins.n_bins))]), np.vstack([ref_totals, np.zeros((1, bins.n_bins))])
    aligned, aligned_totals = padded[index], padded_totals[index]  # -1 -> the zero row
    values = compare(bins, aligned, cur, aligned_totals, cur_totals)
    if settings.thresholds == "reference":
        per_series = _reference_thresholds(bins, series, reference, settings)
        thresholds = {m: np.append(v, getattr(settings, m))[index] for m, v in per_series.items()}
    else:
        thresholds = {m: np.full(len(rows), getattr(settings, m)) for m in values}
    n_current, n_reference = cur.sum(axis=1), aligned.sum(axis=1)
    eligible = (n_current >= settings.min_rows) & (n_reference > 0)
    parts = []
    for method, value in values.items():
        threshold = thresholds[method]
        beyond = value < threshold if method in methods.PVALUE_METHODS else value > threshold
        part = rows.copy()
        part["feature"] = bins.feature
        part["method"] = method
        part["value"] = value
        part["threshold"] = threshold
        part["drifted"] = np.isfinite(value) & eligible & beyond
        part["n_current"] = n_current.astype(np.int64)
        part["n_reference"] = n_reference.astype(np.int64)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def drift_frame(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
                segment: str | None = None, features: Sequence[str] | None = None) -> pd.DataFrame:
    """docs/contract.md drift records for every window end, feature, series and method.

    `segment` as `--segment` (None: overall + every configured segment set); `features`
    restricts the features (unknown names raise ValueError, as do windows that are not
    multiples of the drift bucket). Values are null where a side is empty; see module doc.
    """
    check_spec(ctx, spec)
    segment_sets = parse_segment_option(segment, ctx.segment_sets)
    bins = select_bins(conn, ctx, features)
    if not bins:
        return empty_frame()
    current = current_histograms(conn, ctx, spec, segment_sets, features=[b.feature for b in bins])
    if current.empty:
        return empty_frame()
    reference = reference_histograms(conn, ctx, segment_sets)
    settings = ctx.config.drift
    by_feature_cur = dict(tuple(current.groupby("feature", sort=False)))
    by_feature_ref = dict(tuple(reference.groupby("feature", sort=False))) if len(reference) else {}
    parts = []
    for feature in bins:
        cur = by_feature_cur.get(feature.feature)
        if cur is None:
            continue
        ref = by_feature_ref.get(feature.feature, reference.iloc[0:0])
        parts.append(feature_records(feature, cur, ref, settings))
    if not parts:
        return empty_frame()
    frame = pd.concat(parts, ignore_index=True)
    order = {b.feature: b.position for b in bins}
    frame["_f"] = frame["feature"].map(order)
    frame["_m"] = frame["method"].map(METHOD_ORDER)
    frame["_s"] = frame["segment"] != OVERALL
    frame = frame.sort_values(["end", "_f", "_s", "segment", "segment_value", "_m"], kind="stable")
    frame["model"] = ctx.name
    frame["window"] = format_duration(spec.window)
    frame["end"] = iso_series(frame["end"])
    frame["value"] = frame["value"].astype(float).where(np.isfinite(frame["value"].astype(float)))
    frame["drifted"] = frame["drifted"].astype(bool)
    return frame[COLUMNS].reset_index(drop=True)


def distribution_frame(conn: Connection, ctx: ModelContext, *, feature: str, window: int, end: int,
                       segment: str | None = None, segment_value: str | None = None) -> pd.DataFrame:
    """Reference vs current distribution of one feature for the window ending at `end`, on the
    coarse bins (those of psi/js): columns bin, reference_n, current_n, reference_share,
    current_share. `segment`/`segment_value` pick one series (default overall)."""
    columns = ["bin", "reference_n", "current_n", "reference_share", "current_share"]
    (bins,) = select_bins(conn, ctx, [feature])
    segment_sets = parse_segment_option(segment or OVERALL, ctx.segment_sets)
    wanted = (segment_label(segment_sets[0]), segment_value or OVERALL)
    current = current_histograms(conn, ctx, WindowSpec(window, window), segment_sets[:1],
                                 ends=np.array([end], dtype=np.int64), features=[feature])
    reference = reference_histograms(conn, ctx, segment_sets[:1])

    def coarse_counts(frame: pd.DataFrame) -> np.ndarray:
        mask = (frame["feature"] == feature) & (frame["segment"] == wanted[0]) & (frame["segment_value"] == wanted[1])
        picked = frame[mask]
        counts = np.zeros(bins.n_coarse)
        np.add.at(counts, bins.coarse[picked["bin"].to_numpy(dtype=np.int64)], picked["n"].to_numpy(dtype=float))
        return counts

    ref = coarse_counts(reference) if len(reference) else np.zeros(bins.n_coarse)
    cur = coarse_counts(current) if len(current) else np.zeros(bins.n_coarse)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame({"bin": bins.coarse_labels(), "reference_n": ref.astype(np.int64),
                              "current_n": cur.astype(np.int64),
                              "reference_share": ref / ref.sum(), "current_share": cur / cur.sum()})
    return frame[columns]
