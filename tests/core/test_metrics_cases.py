"""Every record of the metrics read path against oracles on the raw rows, on both backends.

These cases replaced the comparison with the implementation before the numpy rewrite
(`tests/core/legacy_metrics.py`, retired). For every window end, class and series
(overall, each segment value, `(missing)`, each pair of values) the monitor reports, and for
nothing else: counts, precision, recall and f1 from sklearn.metrics, Wilson intervals from
statsmodels, on the predictions and labels visible at the clock; `reference_metrics` against
sklearn on the reference file and on a `reference_period`; `confusion_matrix` against
sklearn's; `expected_coverage` and `provisional` against the label-maturity rule
(docs/contract.md §3, monitor/metrics/maturity.py) computed from raw timestamps. Record
order: by end, class, segment, segment value. `recall_estimated` has its raw-score oracle in
tests/estimation/test_end_to_end.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import multilabel_confusion_matrix, precision_recall_fscore_support
from statsmodels.stats.proportion import proportion_confint

from monitor.config import load_config
from monitor.context import load_context
from monitor.metrics.maturity import coverage_by_age
from monitor.metrics.service import confusion_matrix, metrics_frame, reference_metrics
from monitor.simulate import SimulatedData, simulate, visible, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from monitor.timeutil import parse_time, to_iso
from tests.core.workspace import small_scenario

DAY, HOUR = 86400, 3600
CLASSES = ["routine", "urgent", "critical"]
KEYS = ["end", "class", "segment", "segment_value"]
COUNTS = ["n_predictions", "n_labeled", "tp", "fp", "fn", "tn", "support"]
RATES = ["label_coverage", "precision", "recall", "f1", "recall_low", "recall_high", "precision_low",
         "precision_high"]
SCENARIO = small_scenario(days=8, rows_per_day=250, n_regions=4, missing_segment_fraction=0.1,
                          label_duplicate=0.0, label_correction=0.0)
FIRST = parse_time("2024-03-01")
LAST = FIRST + 8 * DAY


def workspace(tmp_path: Path, db_url: str, *, drop: Sequence[str] = (), **model_extra: object):  # type: ignore[no-untyped-def]
    """Simulated logs and config; `drop` removes top-level model keys from the written TOML."""
    data = simulate(SCENARIO, seed=5)
    write_logs(data, tmp_path, fmt="csv")
    path = write_config(tmp_path, SCENARIO, database_url=db_url, model_extra=model_extra)
    lines = [line for line in path.read_text().splitlines() if line.split(" = ")[0] not in drop]
    path.write_text("\n".join(lines) + "\n")
    config = load_config(path)
    return config, data, make_engine(config.database_url)


def _series(frame: pd.DataFrame, attributes: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """(segment, segment_value, rows) for every series of `attributes` with rows."""
    if not attributes:
        yield "*", "*", frame
        return
    values = frame[list(attributes)].astype(object).where(frame[list(attributes)].notna(), "(missing)").astype(str)
    for key, rows in frame.groupby(values.apply(lambda r: "&".join(r), axis=1), sort=False):
        yield "&".join(attributes), key, rows


def oracle_cells(joined: pd.DataFrame, n_predictions: int, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """One-vs-rest counts and rates per class of one window and series, from sklearn (a
    label outside `classes` counts as a negative of every class)."""
    k = len(classes)
    out: dict[str, np.ndarray] = {"n_predictions": np.full(k, n_predictions), "n_labeled": np.full(k, len(joined))}
    if len(joined):
        matrices = multilabel_confusion_matrix(joined["label"], joined["prediction"], labels=list(classes))
        precision, recall, f1, _ = precision_recall_fscore_support(
            joined["label"], joined["prediction"], labels=list(classes), average=None, zero_division=np.nan)
    else:
        matrices = np.zeros((k, 2, 2), dtype=int)
        precision = recall = f1 = np.full(k, np.nan)
    out.update(tn=matrices[:, 0, 0], fp=matrices[:, 0, 1], fn=matrices[:, 1, 0], tp=matrices[:, 1, 1],
               precision=precision, recall=recall, f1=f1)
    out["support"] = out["tp"] + out["fn"]
    out["label_coverage"] = np.full(k, len(joined) / n_predictions if n_predictions else np.nan)
    for name, successes, n in (("recall", out["tp"], out["support"]), ("precision", out["tp"], out["tp"] + out["fp"])):
        bounds = [proportion_confint(s, t, method="wilson") if t else (np.nan, np.nan) for s, t in zip(successes, n)]
        out[f"{name}_low"], out[f"{name}_high"] = (np.array(b, dtype=float) for b in zip(*bounds))
    return out


def oracle_metrics(data: SimulatedData, clock: int, spec: WindowSpec, sets: Sequence[tuple[str, ...]],
                   classes: Sequence[str], wanted: Sequence[str] | None = None) -> pd.DataFrame:
    """The records the monitor should give: every end covering the visible data (within the
    spec's bounds), every series with a prediction in the window, the chosen classes."""
    predictions, labels = visible(data, clock)
    ts = predictions["timestamp"].map(parse_time).to_numpy()
    first_end = (ts.min() // spec.step + 1) * spec.step  # the first end after the first prediction
    last_end = (ts.max() // spec.step + 1) * spec.step
    ends = np.arange(first_end, last_end + 1, spec.step)
    ends = ends[(ends >= (spec.start or ends[0])) & (ends <= (spec.end if spec.end is not None else ends[-1]))]
    labels = labels[["prediction_id", "label"]]
    rows = []
    for end in ends:
        window = predictions[(ts >= end - spec.window) & (ts < end)]
        for attributes in sets:
            for segment, value, part in _series(window, attributes):
                cells = oracle_cells(part.merge(labels, on="prediction_id"), len(part), classes)
                for i, name in enumerate(classes):
                    if wanted is None or name in wanted:
                        rows.append({"end": to_iso(int(end)), "class": name, "segment": segment,
                                     "segment_value": value, **{c: v[i] for c, v in cells.items()}})
    return pd.DataFrame(rows)


def assert_records(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same keys, no more and no fewer, equal counts and rates; records in key order."""
    assert len(frame) == len(expected) and not frame.duplicated(KEYS).any()
    ordered = frame.sort_values(KEYS, kind="stable").reset_index(drop=True)
    assert frame[KEYS].reset_index(drop=True).equals(ordered[KEYS]), "records are not ordered by end, class, series"
    merged = frame.merge(expected, on=KEYS, how="outer", suffixes=("", "_oracle"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", [*KEYS, "_merge"]].head()
    for column in COUNTS:
        np.testing.assert_array_equal(merged[column].to_numpy(np.int64), merged[f"{column}_oracle"].to_numpy(np.int64),
                                      err_msg=column)
    for column in RATES:
        np.testing.assert_allclose(merged[column].to_numpy(float), merged[f"{column}_oracle"].to_numpy(float),
                                   rtol=0, atol=1e-12, equal_nan=True, err_msg=column)


def oracle_arrival_curve(data: SimulatedData, seen_at: int, clock: int) -> tuple[np.ndarray, np.ndarray]:
    """The label-arrival curve on raw rows: over the predictions of mature hourly buckets
    (older than 60 days at `clock`; with less history, the older half; at most 90 days of
    them), the share labelled within d hours, d rounded up to a power of two."""
    predictions, labels = visible(data, seen_at)
    ts = predictions["timestamp"].map(parse_time).to_numpy()
    bucket = ts - ts % HOUR
    first = bucket.min()
    cutoff = clock - 60 * DAY if first < clock - 60 * DAY else first + (clock - first) // 2
    older = bucket[bucket < cutoff]
    since = (older.max() if len(older) else cutoff) - 90 * DAY
    mature = (bucket >= since) & (bucket < cutoff)
    delays = predictions.assign(ts=ts)[mature].merge(labels, on="prediction_id")
    hours = np.maximum(delays["label_timestamp"].map(parse_time).to_numpy() - delays["ts"].to_numpy(), 0) / HOUR
    rounded = np.where(hours > 1, 2.0 ** np.ceil(np.log2(np.maximum(hours, 1))), np.where(hours > 0, 1.0, 0.0))
    if not mature.sum() or not len(rounded):
        return np.array([0.0]), np.array([0.0])
    steps, counts = np.unique(rounded, return_counts=True)
    return steps, np.minimum(np.cumsum(counts) / mature.sum(), 1.0)


def oracle_expected_coverage(data: SimulatedData, seen_at: int, clock: int, ends: np.ndarray, window: int) -> np.ndarray:
    """A window's expected coverage: the mean of the arrival curve (a step function) over 9
    ages from its youngest to its oldest prediction; 0 for a window ending after `clock`."""
    steps, shares = oracle_arrival_curve(data, seen_at, clock)
    youngest = (clock - ends) / HOUR
    ages = youngest[:, None] + np.linspace(0, 1, 9)[None, :] * window / HOUR
    index = np.searchsorted(steps, ages, side="right") - 1
    curve = np.where(index >= 0, shares[np.clip(index, 0, None)], 0.0)
    return np.where(youngest < 0, 0.0, curve.mean(axis=1))


def assert_maturity(frame: pd.DataFrame, data: SimulatedData, seen_at: int, clock: int, window: int) -> None:
    ends = frame["end"].map(parse_time).to_numpy()
    expected = oracle_expected_coverage(data, seen_at, clock, ends, window)
    np.testing.assert_allclose(frame["expected_coverage"].to_numpy(float), expected, rtol=1e-9, atol=1e-12)
    coverage = frame["label_coverage"].fillna(0.0).to_numpy(float)
    # a window ending after the clock is partial: provisional whatever its labels (issue 14)
    np.testing.assert_array_equal(frame["partial"].to_numpy(bool), ends > clock)
    np.testing.assert_array_equal(frame["provisional"].to_numpy(bool), (coverage + 1e-9 < 0.9 * expected) | (ends > clock))


def test_every_metrics_record_equals_sklearn_and_the_maturity_rule(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    """Mid-stream (labels still arriving: provisional windows), intersections and missing
    segment values; then with every label in, seen long after (mature history)."""
    config, data, engine = workspace(tmp_path, db_url, intersections=True)
    ctx_sets = [(), ("sex",), ("age_band",), ("region",), ("sex", "age_band"), ("sex", "region"), ("age_band", "region")]
    as_of = parse_time("2024-03-06T06:00:00Z")
    run_tick(engine, config, as_of=as_of, notify=False)
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        assert ctx.segment_sets == ctx_sets[1:]
        spec = WindowSpec(7 * DAY, DAY)
        frame = metrics_frame(conn, ctx, spec, as_of=as_of)
        assert_records(frame, oracle_metrics(data, as_of, spec, ctx_sets, CLASSES))
        assert frame["provisional"].any() and not frame["provisional"].all()
        assert_maturity(frame, data, as_of, as_of, spec.window)
        curve = coverage_by_age(conn, ctx, as_of)
        steps, shares = oracle_arrival_curve(data, as_of, as_of)
        np.testing.assert_allclose(curve["delay_hours"], steps)
        np.testing.assert_allclose(curve["coverage"], shares, rtol=1e-12)
        with pytest.raises(ValueError, match="unknown class 'no-such-class'"):
            metrics_frame(conn, ctx, spec, classes=["no-such-class"])
        assert (frame["segment_value"].str.contains("(missing)", regex=False)).any()
        # a class filter and a segment option pick records; a bounded spec picks ends
        picked = metrics_frame(conn, ctx, spec, classes=["critical", "urgent"], segment="region,sex&age_band", as_of=as_of)
        assert_records(picked, oracle_metrics(data, as_of, spec, [("region",), ("sex", "age_band")], CLASSES,
                                              wanted=["critical", "urgent"]))
        bounded = WindowSpec(3 * DAY, 12 * HOUR, FIRST + 2 * DAY, FIRST + 4 * DAY)
        assert_records(metrics_frame(conn, ctx, bounded, segment="*", as_of=as_of),
                       oracle_metrics(data, as_of, bounded, [()], CLASSES))
        assert metrics_frame(conn, ctx, WindowSpec(7 * DAY, DAY, LAST + 30 * DAY, LAST + 40 * DAY)).empty
    run_tick(engine, config, notify=False)  # every label visible
    late = FIRST + 64 * DAY  # mature history: the buckets of the first 4 days
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        spec = WindowSpec(DAY, DAY)
        frame = metrics_frame(conn, ctx, spec, segment="*,region", as_of=late)
        assert_records(frame, oracle_metrics(data, 2**37, spec, [(), ("region",)], CLASSES))
        assert_maturity(frame, data, 2**37, late, spec.window)
    engine.dispose()


def test_reference_metrics_and_confusion_matrix_equal_sklearn(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    config, data, engine = workspace(tmp_path, db_url)
    run_tick(engine, config, notify=False)
    reference = data.reference.rename(columns={"label": "truth"})
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        frame = reference_metrics(conn, ctx)
        cells = frame.assign(end="-")
        rows = []
        for attributes in [(), *ctx.segment_sets]:
            for segment, value, part in _series(reference, attributes):
                found = oracle_cells(part.rename(columns={"truth": "label"}), len(part), CLASSES)
                rows += [{"end": "-", "class": c, "segment": segment, "segment_value": value,
                          **{k: v[i] for k, v in found.items()}} for i, c in enumerate(CLASSES)]
        expected = pd.DataFrame(rows).drop(columns=["n_predictions", "n_labeled", "label_coverage"])
        merged = cells.merge(expected, on=KEYS, how="outer", suffixes=("", "_oracle"), indicator=True)
        assert (merged["_merge"] == "both").all() and len(merged) == len(frame)
        for column in ["tp", "fp", "fn", "tn", "support", *RATES[1:]]:
            np.testing.assert_allclose(merged[column].to_numpy(float), merged[f"{column}_oracle"].to_numpy(float),
                                       atol=1e-12, equal_nan=True, err_msg=column)
        predictions, labels = visible(data, 2**37)
        ts = predictions["timestamp"].map(parse_time)
        start, end = LAST - 7 * DAY, LAST - 2 * DAY
        window = predictions[(ts >= start) & (ts < end)].merge(labels, on="prediction_id")
        for segment, value, rows_ in [("*", None, window), ("region", "south", window[window["region"] == "south"]),
                                      ("sex&region", "F&south", window[(window["sex"] == "F") & (window["region"] == "south")])]:
            cells_found = confusion_matrix(conn, ctx, start, end, segment=segment, segment_value=value)
            matrix = sk_confusion(rows_["label"], rows_["prediction"], labels=CLASSES)
            expected_cells = {(t, p): int(matrix[i, j]) for i, t in enumerate(CLASSES) for j, p in enumerate(CLASSES)
                              if matrix[i, j]}
            assert {(r.true_class, r.pred_class): int(r.n) for r in cells_found.itertuples()} == expected_cells
        assert confusion_matrix(conn, ctx, start, end, segment="region", segment_value="no-such-value").empty
    engine.dispose()


def test_a_reference_period_is_scored_like_sklearn_on_that_period(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    period = ("2024-03-02T00:00:00Z", "2024-03-05T00:00:00Z")
    config, data, engine = workspace(tmp_path, db_url, drop=["reference"], reference_period=list(period))
    run_tick(engine, config, notify=False)
    predictions, labels = visible(data, 2**37)
    ts = predictions["timestamp"].map(parse_time)
    inside = predictions[(ts >= parse_time(period[0])) & (ts < parse_time(period[1]))]
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        frame = reference_metrics(conn, ctx, [(), ("region",)])
    for attributes in [(), ("region",)]:
        for segment, value, part in _series(inside, attributes):
            found = oracle_cells(part.merge(labels, on="prediction_id"), len(part), CLASSES)
            for i, name in enumerate(CLASSES):
                row = frame[(frame["segment"] == segment) & (frame["segment_value"] == value) & (frame["class"] == name)]
                assert len(row) == 1, (segment, value, name)
                for column in ["tp", "fp", "fn", "tn", "support", "recall", "precision", "f1", "recall_low"]:
                    np.testing.assert_allclose(float(row[column].iloc[0]), float(found[column][i]), atol=1e-12,
                                               equal_nan=True, err_msg=column)
    engine.dispose()


def test_without_configured_classes_the_labelled_classes_are_reported(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    """No `classes`, no reference: the classes are those seen in the labelled counts."""
    config, data, engine = workspace(tmp_path, db_url, drop=["classes", "minority_classes", "reference"])
    run_tick(engine, config, notify=False)
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        assert not ctx.classes
        spec = WindowSpec(7 * DAY, DAY)
        frame = metrics_frame(conn, ctx, spec, segment="*,sex", as_of=LAST + 100 * DAY)
    engine.dispose()
    assert_records(frame, oracle_metrics(data, 2**37, spec, [(), ("sex",)], sorted(CLASSES)))


def test_estimated_recall_its_interval_and_warning_from_raw_scores(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    """Over-confident scores used as they are: per record, the estimate is the share of the
    class's score mass on rows predicted as it, its interval a Wilson interval (statsmodels) at
    the effective size of the delta-method variance of the sums of p (1 - p), and the warning
    is set exactly on the classes the calibration report flags."""
    scenario = small_scenario(days=6, rows_per_day=300, calibrated=False)
    data = simulate(scenario, seed=9)
    write_logs(data, tmp_path, fmt="csv")
    config = load_config(write_config(tmp_path, scenario, database_url=db_url,
                                      model_extra={"estimation": {"calibration": "none"}}))
    engine = make_engine(config.database_url)
    run_tick(engine, config, notify=False)
    from monitor.estimation.service import calibration_report

    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        spec = WindowSpec(2 * DAY, DAY)
        frame = metrics_frame(conn, ctx, spec, segment="*,region", as_of=FIRST + 30 * DAY)
        report = calibration_report(conn, ctx)
    engine.dispose()
    flagged = set(report.loc[report["badly_calibrated"], "class"])
    assert flagged, "over-confident scores should be flagged"
    assert (frame["estimation_warning"].notna() == frame["class"].isin(flagged)).all()
    predictions = data.predictions.assign(ts=data.predictions["timestamp"].map(parse_time))
    for record in frame.itertuples(index=False):
        name, end = record[3], parse_time(record.end)  # `class` is a keyword: by position
        rows = predictions[(predictions["ts"] >= end - spec.window) & (predictions["ts"] < end)]
        if record.segment == "region":
            rows = rows[rows["region"] == record.segment_value]
        scores = rows[[f"score_{c}" for c in CLASSES]].to_numpy(float)
        p = (scores / scores.sum(axis=1, keepdims=True))[:, CLASSES.index(name)]
        predicted = (rows["prediction"] == name).to_numpy()
        tp, fn = p[predicted].sum(), p[~predicted].sum()
        var_tp, var_fn = (p * (1 - p))[predicted].sum(), (p * (1 - p))[~predicted].sum()
        recall = tp / (tp + fn)
        variance = (fn * fn * var_tp + tp * tp * var_fn) / (tp + fn) ** 4
        n_eff = recall * (1 - recall) / variance
        low, high = proportion_confint(recall * n_eff, n_eff, method="wilson")
        np.testing.assert_allclose([record.recall_estimated, record.recall_estimated_low, record.recall_estimated_high],
                                   [recall, max(low, 0.0), min(high, 1.0)], rtol=1e-9, atol=1e-12)
