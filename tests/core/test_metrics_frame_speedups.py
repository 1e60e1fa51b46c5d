"""The numpy read path of metrics gives exactly the frames of the pandas one it replaced.

`tests/core/legacy_metrics.py` is the implementation before the rewrite, verbatim. On
simulated workspaces (late labels, intersections, missing segment values, scores) and on a
hand-filled database with awkward values (unicode, case, digits, a class outside the
configured ones, a gap in the data, slices without every attribute, estimates and
calibration warnings on some classes only), every public function must return the same
columns, dtypes, index, row order and values, NaN where NaN and None where None, on both
backends.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from monitor.config import ModelConfig
from monitor.context import ensure_model, load_context
from monitor.estimation import service as estimation
from monitor.estimation.models import EstimationCalibrator, ExpectedCount
from monitor.metrics import maturity, service
from monitor.store.bulk import insert_frame
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import (
    ConfusionCount,
    LabelArrivalCount,
    PredictionCount,
    ReferenceCount,
    Slice,
    SliceValue,
)
from monitor.store.windows import WindowSpec, segment_label, windowed_counts
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.core import legacy_metrics as legacy
from tests.core.workspace import engine_for, make_workspace, small_scenario

DAY = 86400
HOUR = 3600


def assert_same(new: object, old: object) -> None:
    """Equal frames (or arrays), down to dtypes, index type and None versus NaN."""
    if isinstance(old, np.ndarray):
        assert isinstance(new, np.ndarray) and new.dtype == old.dtype and new.shape == old.shape
        np.testing.assert_array_equal(new, old)
        return
    assert isinstance(new, pd.DataFrame) and isinstance(old, pd.DataFrame)
    pd.testing.assert_frame_equal(new, old, check_exact=True, check_index_type=True,
                                  check_column_type=True)
    for column in old.columns:
        if old[column].dtype == object:
            kinds_new = [_kind(v) for v in new[column].tolist()]
            kinds_old = [_kind(v) for v in old[column].tolist()]
            assert kinds_new == kinds_old, column


def _kind(value: object) -> object:
    if value is None:
        return "None"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return type(value).__name__, value


def same_call(name: str, *args: object, **kwargs: object) -> pd.DataFrame:
    """Call `name` of the new modules and of the legacy copy; both raise alike or agree."""
    new_fn = _new(name)
    old_fn = getattr(legacy, name)
    try:
        old = old_fn(*args, **kwargs)
    except ValueError as exc:
        with pytest.raises(ValueError) as raised:
            new_fn(*args, **kwargs)
        assert str(raised.value) == str(exc)
        return pd.DataFrame()
    new = new_fn(*args, **kwargs)
    if isinstance(old, tuple):
        for a, b in zip(new, old, strict=True):
            assert_same(a, b)
    else:
        assert_same(new, old)
    return old


def _new(name: str):  # type: ignore[no-untyped-def]
    for module in (service, maturity, estimation):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(name)


def check_everything(conn, ctx, as_of: int, first: int, last: int) -> int:  # type: ignore[no-untyped-def]
    """Every function on many arguments; returns how many metric rows were compared."""
    rows = 0
    specs = [WindowSpec(7 * DAY, DAY), WindowSpec(DAY, DAY), WindowSpec(3 * DAY, 12 * HOUR),
             WindowSpec(7 * DAY, DAY, first + 5 * DAY, last - 2 * DAY),
             WindowSpec(7 * DAY, DAY, last + 30 * DAY, last + 40 * DAY),  # no window at all
             WindowSpec(2 * HOUR, HOUR, first + 3 * DAY, first + 4 * DAY)]
    labels = [None, "*"] + [segment_label(s) for s in ctx.segment_sets]
    if len(ctx.segment_sets) >= 2:
        labels.append(",".join(segment_label(s) for s in reversed(ctx.segment_sets)))
    class_filters = [None, [ctx.classes[-1]] if ctx.classes else None, list(reversed(ctx.classes)) or None,
                     ["no-such-class"]]
    # every segment option and every class filter on the first spec (the filter is applied
    # last, so it needs no combination with the others); two of them on each other spec
    pairs = [(segment, None) for segment in labels] + [(None, classes) for classes in class_filters[1:]]
    for number, spec in enumerate(specs):
        for segment, classes in pairs if number == 0 else pairs[number % 3::4][:2]:
            frame = same_call("metrics_frame", conn, ctx, spec, classes=classes, segment=segment, as_of=as_of)
            rows += len(frame)
    same_call("metrics_frame", conn, ctx, specs[0], segment=None)  # as_of: now
    # classes learned from the data only (no configured classes)
    bare = dataclasses.replace(ctx, classes=[])
    for segment in (None, "*"):
        spec = WindowSpec(7 * DAY, DAY)
        if _has_labels(conn, ctx):
            rows += len(same_call("metrics_frame", conn, bare, spec, segment=segment, as_of=as_of))
        elif _has_predictions(conn, ctx):
            # the one intended difference: without classes and labels, the old chain merged
            # an empty float64 `segment` column onto the str one and raised; now no records
            with pytest.raises(ValueError, match="merge on str and float64"):
                legacy.metrics_frame(conn, bare, spec, segment=segment, as_of=as_of)
            frame = service.metrics_frame(conn, bare, spec, segment=segment, as_of=as_of)
            assert frame.empty and list(frame.columns) == service.METRIC_COLUMNS + service.EXTRA_COLUMNS
    for sets in (None, [()], *[[s] for s in ctx.segment_sets], [*ctx.segment_sets, ()]):
        same_call("reference_metrics", conn, ctx, sets)
        same_call("reference_metrics", conn, bare, sets)
    for start, end in ((last - 7 * DAY, last), (last + DAY, last + 2 * DAY), (first + DAY, first + DAY + HOUR)):
        same_call("confusion_matrix", conn, ctx, start, end)
        for attributes in ctx.segment_sets:
            label = segment_label(attributes)
            same_call("confusion_matrix", conn, ctx, start, end, segment=label)
            values = windowed_counts(conn, ConfusionCount.__table__, model_id=ctx.model_id,
                                     spec=WindowSpec(end - start, end - start), segment_sets=[attributes],
                                     key_columns=["true_class", "pred_class"], ends=np.array([end]))
            for value in [*sorted(set(values.get("segment_value", [])))[:2], "no-such-value"]:
                same_call("confusion_matrix", conn, ctx, start, end, segment=label, segment_value=value)
    ends = np.arange(first, last + 3 * DAY, 6 * HOUR, dtype=np.int64)
    for clock in (as_of, first + 2 * DAY, last + 400 * DAY, first - DAY):
        for window in (DAY, 7 * DAY, 5 * HOUR):
            same_call("expected_coverage", conn, ctx, ends, window, clock)
            same_call("expected_coverage", conn, ctx, ends[::-1].astype(np.float64), window, clock)
        same_call("expected_coverage", conn, ctx, np.array([], dtype=np.int64), DAY, clock)
        same_call("coverage_by_age", conn, ctx, clock)
    # the curve's total reads whole days from the daily roll-up: clocks at odd seconds, so
    # the edges of its range fall inside days, and clocks whose range lies within one day
    for clock in range(first - DAY, last + 160 * DAY, 5 * DAY + 7 * HOUR + 13 * 60 + 17):
        same_call("coverage_curve", conn, ctx, clock)
    for spec in specs[:3]:
        for sets in ([()], [(), *ctx.segment_sets]):
            same_call("estimated_frame", conn, ctx, spec, segment_sets=sets)
    same_call("estimated_frame", conn, ctx, specs[0], segment_sets=ctx.segment_sets, ends=np.array([last, last + DAY]))
    same_call("calibration_report", conn, ctx)
    return rows


def _has_labels(conn, ctx) -> bool:  # type: ignore[no-untyped-def]
    return conn.execute(select(func.count()).select_from(ConfusionCount.__table__)
                        .where(ConfusionCount.model_id == ctx.model_id)).scalar() > 0


def _has_predictions(conn, ctx) -> bool:  # type: ignore[no-untyped-def]
    return conn.execute(select(func.count()).select_from(PredictionCount.__table__)
                        .where(PredictionCount.model_id == ctx.model_id)).scalar() > 0


@pytest.mark.slow
@pytest.mark.parametrize("intersections", [True, False])
def test_simulated_workspace(tmp_path, db_url, intersections):  # type: ignore[no-untyped-def]
    """With intersections mid-stream (labels still arriving: provisional windows), without
    them once every label is in."""
    scenario = small_scenario(days=8, rows_per_day=250, missing_segment_fraction=0.1, n_regions=4)
    config, _ = make_workspace(tmp_path, db_url, scenario, model_extra={"intersections": intersections})
    engine = engine_for(config)
    first, last = parse_time("2024-03-01"), parse_time("2024-03-09")
    as_of = parse_time("2024-03-06T06:00:00Z") if intersections else last + 10 * DAY
    run_tick(engine, config, as_of=as_of if intersections else None, notify=False)
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        assert check_everything(conn, ctx, as_of, first, last) > 1000


def test_workspace_without_labels(tmp_path, db_url):  # type: ignore[no-untyped-def]
    config, _ = make_workspace(tmp_path, db_url, small_scenario(days=4, rows_per_day=200))
    for path in (tmp_path / "labels").glob("*"):
        path.unlink()
    engine = engine_for(config)
    run_tick(engine, config, notify=False)
    first = parse_time("2024-03-01")
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        frame = service.metrics_frame(conn, ctx, WindowSpec(DAY, DAY), as_of=first + 9 * DAY)
        assert len(frame) and (frame["n_labeled"] == 0).all()
        check_everything(conn, ctx, first + 9 * DAY, first, first + 4 * DAY)


def test_empty_model(tmp_path, db_url):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    upgrade(engine)
    model = ModelConfig(name="empty", classes=["b", "a"], segments=["region"])
    with engine.begin() as conn:
        ensure_model(conn, model)
    with engine.connect() as conn:
        ctx = load_context(conn, model)
        check_everything(conn, ctx, 1_704_067_200, 1_704_067_200, 1_704_067_200 + 10 * DAY)


REGIONS = ["Zürich", "zeta", "Alpha", "alpha", "β", "10", "9", "a b", "region_07"]
TIERS = ["x", "Y", "é"]
FILL_CLASSES = ["routine", "Urgent", "critical"]


def fill_awkward(url: str, model: ModelConfig, *, seed: int = 3, days: int = 14) -> tuple[int, int]:
    """Count tables of `days` of hourly data with a 3-day gap, over slices with odd values
    (some without a tier), a label class outside the configured ones, label arrivals,
    reference counts, expected counts on part of the time and calibrators for two classes."""
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    upgrade(engine)
    start = 1_704_067_200
    hours = np.array([h for h in range(days * 24) if not 6 * 24 <= h < 9 * 24])
    slices = [(r, t) for r in REGIONS for t in (*TIERS, None)]
    with engine.begin() as conn:
        model_id = ensure_model(conn, model)
        ids = np.arange(1, len(slices) + 1)
        insert_frame(conn, Slice.__table__, pd.DataFrame({
            "id": ids, "model_id": model_id, "key": [f"{r}|{t}" for r, t in slices]}))
        values = [(i, "region", r) for i, (r, _) in zip(ids, slices)]
        values += [(i, "tier", t) for i, (_, t) in zip(ids, slices) if t is not None]
        insert_frame(conn, SliceValue.__table__, pd.DataFrame(values, columns=["slice_id", "attribute", "value"]))
        truth_classes = [*FILL_CLASSES, "other"]
        pred, conf, exp = [], [], []
        for h in hours:
            bucket = start + int(h) * HOUR
            for sid in rng.choice(ids, size=12, replace=False):
                counts = rng.poisson(3.0, size=3)
                for k, n in enumerate(counts):
                    if n:
                        pred.append((bucket, sid, FILL_CLASSES[k], int(n)))
                if h < days * 24 - 30:  # the newest hours have no labels yet
                    for t in range(4):
                        for p in range(3):
                            n = int(rng.poisson(0.8 if t != p else 2.0))
                            if n and (t < 3 or rng.random() < 0.2):
                                conf.append((bucket, sid, truth_classes[t], FILL_CLASSES[p], n))
                if h % 5:  # expected counts for most buckets only
                    for name in [*FILL_CLASSES[:2], "ghost"]:
                        scored = int(rng.integers(0, 6))
                        tp, fn = rng.random() * scored, rng.random() * 2
                        exp.append((bucket, sid, name, scored, int(rng.integers(0, scored + 1)), tp, fn,
                                    rng.random(), rng.random(), tp * 0.2, fn * 0.1))
        insert_frame(conn, PredictionCount.__table__, pd.DataFrame(
            pred, columns=["bucket_start", "slice_id", "pred_class", "n"]).assign(model_id=model_id))
        insert_frame(conn, ConfusionCount.__table__, pd.DataFrame(
            conf, columns=["bucket_start", "slice_id", "true_class", "pred_class", "n"]).assign(model_id=model_id))
        insert_frame(conn, ExpectedCount.__table__, pd.DataFrame(exp, columns=[
            "bucket_start", "slice_id", "class_name", "n_scored", "n_predicted", "exp_tp", "exp_fn", "exp_fp",
            "exp_tn", "var_tp", "var_fn"]).assign(model_id=model_id))
        delay_bins = np.array([0, 1, 2, 4, 8, 16, 32, 64])
        arrivals = rng.integers(0, 5, size=(len(hours), len(delay_bins)))
        hour_index, which = np.nonzero(arrivals)
        insert_frame(conn, LabelArrivalCount.__table__, pd.DataFrame({
            "model_id": model_id, "bucket_start": start + hours[hour_index].astype(np.int64) * HOUR,
            "delay_bin": delay_bins[which], "n": arrivals[hour_index, which]}))
        reference = [(int(sid), truth_classes[t], FILL_CLASSES[p], int(rng.integers(1, 40)))
                     for sid in ids[::2] for t in range(4) for p in range(3) if rng.random() < 0.7]
        insert_frame(conn, ReferenceCount.__table__, pd.DataFrame(
            reference, columns=["slice_id", "true_class", "pred_class", "n"]).assign(model_id=model_id))
        insert_frame(conn, EstimationCalibrator.__table__, pd.DataFrame({
            "model_id": model_id, "class_name": ["Urgent", "routine"], "method": ["isotonic", "none"],
            "applied": [True, False], "thresholds": [None, None], "ece_before": [0.12, 0.2],
            "ece_after": [0.01, np.nan], "badly_calibrated": [True, True], "n_reference": [100, 100],
            "n_positive": [10, 50]}))
    engine.dispose()
    return start, start + days * DAY


@pytest.mark.slow
@pytest.mark.parametrize("classes", [FILL_CLASSES, None])
def test_awkward_values_and_partial_estimates(db_url, classes):  # type: ignore[no-untyped-def]
    model = ModelConfig(name="odd", classes=classes, segments=["region", "tier"], intersections=True)
    first, last = fill_awkward(db_url, model)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = load_context(conn, model)
        frame = service.metrics_frame(conn, ctx, WindowSpec(DAY, DAY), as_of=last)
        assert frame["estimation_warning"].notna().any() and frame["estimation_warning"].isna().any()
        assert check_everything(conn, ctx, last + 2 * DAY, first, last) > 1000


def test_reference_period(db_url):  # type: ignore[no-untyped-def]
    model = ModelConfig(name="period", classes=FILL_CLASSES, segments=["region", "tier"],
                        reference_period=("2024-01-02T00:00:00Z", "2024-01-05T00:00:00Z"))
    first, last = fill_awkward(db_url, model, seed=5, days=12)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = load_context(conn, model)
        for sets in (None, [()], [("tier",)], [("region", "tier")], []):
            same_call("reference_metrics", conn, ctx, sets)
