"""The metrics read path on inputs the simulator does not make, against sklearn.

Count tables filled by hand with awkward values (unicode, case and digit-only segment values,
a label class outside the configured ones, a 3-day gap, slices without every attribute, the
newest hours unlabelled), a workspace without labels and an empty model. Every record of
`metrics_frame` is checked against sklearn.metrics on the rows the counts stand for
(`tests/core/test_metrics_cases.py` holds the oracle and the simulated cases). These tests
once compared the numpy rewrite with the pandas implementation before it
(tests/core/legacy_metrics.py, retired once the oracles covered what it checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from monitor.config import ModelConfig
from monitor.context import ensure_model, load_context
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
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from monitor.timeutil import parse_time, to_iso
from tests.core.test_metrics_cases import KEYS, assert_records, oracle_cells
from tests.core.workspace import engine_for, make_workspace, small_scenario

DAY = 86400
HOUR = 3600


REGIONS = ["Zürich", "zeta", "Alpha", "alpha", "β", "10", "9", "a b", "region_07"]
TIERS = ["x", "Y", "é"]
FILL_CLASSES = ["routine", "Urgent", "critical"]


@dataclass
class Filled:
    first: int
    last: int
    slices: dict[int, dict[str, str]]  # slice id -> attribute -> value
    predictions: pd.DataFrame  # bucket_start, slice_id, pred_class, n
    confusion: pd.DataFrame  # bucket_start, slice_id, true_class, pred_class, n


def slices_by_id(ids: np.ndarray, slices: list[tuple[str, str | None]]):  # type: ignore[no-untyped-def]
    for sid, (region, tier) in zip(ids, slices):
        yield int(sid), {"region": region, **({"tier": tier} if tier is not None else {})}


def fill_awkward(url: str, model: ModelConfig, *, seed: int = 3, days: int = 14) -> Filled:
    """Count tables of `days` of hourly data with a 3-day gap, over slices with odd values
    (some without a tier), a label class outside the configured ones, label arrivals,
    reference counts, expected counts on part of the time and calibrators for two classes.
    Returns what was inserted: the oracle's input."""
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
    return Filled(start, start + days * DAY, dict(slices_by_id(ids, slices)),
                  pd.DataFrame(pred, columns=["bucket_start", "slice_id", "pred_class", "n"]),
                  pd.DataFrame(conf, columns=["bucket_start", "slice_id", "true_class", "pred_class", "n"]))


def _series_value(values: dict[str, str], attributes: tuple[str, ...]) -> str | None:
    """The series value of a slice for `attributes` (None: the slice lacks one of them)."""
    if not all(a in values for a in attributes):
        return None
    return "&".join(values[a] for a in attributes) if attributes else "*"


def oracle_from_counts(filled: Filled, spec: WindowSpec, sets: list[tuple[str, ...]],
                       classes: list[str]) -> pd.DataFrame:
    """The records of the rows behind the counts: each count cell expanded into that many
    rows, then `oracle_cells` (sklearn) per window end and series; ends every `step` from
    the first prediction to the first end after the last, series with a prediction only."""
    step, window = spec.step, spec.window
    predicted_rows = filled.predictions.loc[filled.predictions.index.repeat(filled.predictions["n"])]
    labelled_rows = filled.confusion.loc[filled.confusion.index.repeat(filled.confusion["n"])].rename(
        columns={"true_class": "label", "pred_class": "prediction"})
    first_end = (predicted_rows["bucket_start"].min() // step + 1) * step
    last_end = (predicted_rows["bucket_start"].max() // step + 1) * step
    records = []
    for end in range(int(first_end), int(last_end) + 1, step):
        in_window = predicted_rows[(predicted_rows["bucket_start"] >= end - window) & (predicted_rows["bucket_start"] < end)]
        labelled = labelled_rows[(labelled_rows["bucket_start"] >= end - window) & (labelled_rows["bucket_start"] < end)]
        for attributes in sets:
            key = {sid: _series_value(values, attributes) for sid, values in filled.slices.items()}
            series = in_window["slice_id"].map(key)
            label_series = labelled["slice_id"].map(key)
            for value in sorted(set(series.dropna())):
                cells = oracle_cells(labelled[label_series == value], int((series == value).sum()), classes)
                for i, name in enumerate(classes):
                    records.append({"end": to_iso(end), "class": name, "segment": "&".join(attributes) or "*",
                                    "segment_value": value, **{c: v[i] for c, v in cells.items()}})
    return pd.DataFrame(records)


@pytest.mark.slow
@pytest.mark.parametrize("classes", [FILL_CLASSES, None])
def test_awkward_values_against_sklearn(db_url, classes):  # type: ignore[no-untyped-def]
    model = ModelConfig(name="odd", classes=classes, segments=["region", "tier"], intersections=True)
    filled = fill_awkward(db_url, model)
    engine = make_engine(db_url)
    # learned classes: those of the labelled cells, sorted (the outside class included)
    expected_classes = FILL_CLASSES if classes else sorted({*filled.confusion["true_class"], *filled.confusion["pred_class"]})
    with engine.connect() as conn:
        ctx = load_context(conn, model)
        spec = WindowSpec(DAY, DAY)
        frame = service.metrics_frame(conn, ctx, spec, as_of=filled.last)
        assert frame["estimation_warning"].notna().any() and frame["estimation_warning"].isna().any()
        sets = [(), ("region",), ("tier",), ("region", "tier")]
        assert_records(frame, oracle_from_counts(filled, spec, sets, expected_classes))
        spec = WindowSpec(3 * DAY, 12 * HOUR)
        frame = service.metrics_frame(conn, ctx, spec, segment="tier,region&tier", classes=["critical"], as_of=filled.last)
        expected = oracle_from_counts(filled, spec, [("tier",), ("region", "tier")], expected_classes)
        assert_records(frame, expected[expected["class"] == "critical"])
        assert sorted(set(frame["segment_value"][frame["segment"] == "tier"])) == ["Y", "x", "é"]
    engine.dispose()


def test_workspace_without_labels(tmp_path, db_url):  # type: ignore[no-untyped-def]
    """Predictions only: every record has counts of predictions, none labelled, null rates."""
    config, _ = make_workspace(tmp_path, db_url, small_scenario(days=4, rows_per_day=200))
    for path in (tmp_path / "labels").glob("*"):
        path.unlink()
    engine = engine_for(config)
    run_tick(engine, config, notify=False)
    first = parse_time("2024-03-01")
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        frame = service.metrics_frame(conn, ctx, WindowSpec(DAY, DAY), as_of=first + 9 * DAY)
    engine.dispose()
    assert len(frame) and (frame["n_predictions"] > 0).all() and (frame["n_labeled"] == 0).all()
    assert frame[["tp", "fp", "fn", "tn", "support"]].eq(0).all().all()
    assert (frame["label_coverage"] == 0).all()
    assert frame[["recall", "precision", "f1", "recall_low", "precision_high"]].isna().all().all()
    assert not frame.duplicated(KEYS).any()


def test_empty_model(db_url):  # type: ignore[no-untyped-def]
    """A model with no data: empty records with every field, nothing to mature."""
    engine = make_engine(db_url)
    upgrade(engine)
    model = ModelConfig(name="empty", classes=["b", "a"], segments=["region"])
    with engine.begin() as conn:
        ensure_model(conn, model)
    start = 1_704_067_200
    with engine.connect() as conn:
        ctx = load_context(conn, model)
        frame = service.metrics_frame(conn, ctx, WindowSpec(7 * DAY, DAY), as_of=start)
        assert frame.empty and list(frame.columns) == service.METRIC_COLUMNS + service.EXTRA_COLUMNS
        assert service.reference_metrics(conn, ctx).empty
        assert service.confusion_matrix(conn, ctx, start, start + DAY).empty
        ends = np.array([start, start + DAY])
        np.testing.assert_array_equal(maturity.expected_coverage(conn, ctx, ends, DAY, start + 2 * DAY), [0.0, 0.0])
    engine.dispose()
