"""Rolling per-class metrics equal sklearn's on the rows the monitor can see, on both backends,
with late, out-of-order, duplicated and corrected labels, for several windows and segments."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score
from statsmodels.stats.proportion import proportion_confint

from monitor.context import load_context
from monitor.metrics.service import metrics_frame
from monitor.simulate import visible
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.core.workspace import (
    assert_close,
    engine_for,
    make_workspace,
    oracle_counts,
    small_scenario,
)

DAY = 86400


def _metrics(engine, config, spec, **kwargs):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        return metrics_frame(conn, ctx, spec, **kwargs)


def _row(frame, end, cls, segment="*", value="*"):  # type: ignore[no-untyped-def]
    hit = frame[(frame["end"] == end) & (frame["class"] == cls) & (frame["segment"] == segment)
                & (frame["segment_value"] == value)]
    assert len(hit) == 1, (end, cls, segment, value, len(hit))
    return hit.iloc[0]


@pytest.mark.parametrize("window,step", [(7 * DAY, DAY), (DAY, DAY), (3 * DAY, 12 * 3600)])
def test_metrics_equal_sklearn_on_visible_rows_mid_stream_and_at_the_end(tmp_path, db_url, window, step):
    config, data = make_workspace(tmp_path, db_url, small_scenario())
    engine = engine_for(config)
    as_of = "2024-03-09T06:00:00Z"
    run_tick(engine, config, as_of=parse_time(as_of), notify=False)
    checks = [(as_of, "2024-03-08T00:00:00Z"), (as_of, "2024-03-09T00:00:00Z")]
    frame = _metrics(engine, config, WindowSpec(window, step), as_of=parse_time(as_of))
    for clock, end in checks:
        for cls in ("critical", "urgent"):
            for segment, value in (("*", "*"), ("sex", "F"), ("region", "south")):
                expected = oracle_counts(data, as_of=clock, end=end, window=window, cls=cls,
                                         segment=None if segment == "*" else segment, value=value)
                row = _row(frame, end, cls, segment, value)
                for key in ("n_predictions", "n_labeled", "tp", "fp", "fn", "tn"):
                    assert row[key] == expected[key], (key, end, cls, segment, value)
    run_tick(engine, config, notify=False)  # everything visible now
    frame = _metrics(engine, config, WindowSpec(window, step))
    end = "2024-03-10T00:00:00Z"
    predictions, labels = visible(data, 2**37)  # after every simulated time (the year 6325)
    stamps = predictions["timestamp"].map(parse_time)
    inside = predictions[(stamps >= parse_time(end) - window) & (stamps < parse_time(end))]
    joined = inside.merge(labels, on="prediction_id")
    for cls in ("critical", "routine"):
        row = _row(frame, end, cls)
        assert_close(row["recall"], recall_score(joined["label"], joined["prediction"], labels=[cls], average=None, zero_division=np.nan)[0])
        assert_close(row["precision"], precision_score(joined["label"], joined["prediction"], labels=[cls], average=None, zero_division=np.nan)[0])
        low, high = proportion_confint(row["tp"], row["tp"] + row["fn"], method="wilson")
        assert_close(row["recall_low"], low, 1e-9)
        assert_close(row["recall_high"], high, 1e-9)
        assert row["support"] == row["tp"] + row["fn"]
        assert row["label_coverage"] == pytest.approx(row["n_labeled"] / row["n_predictions"])


def test_a_window_with_no_labels_has_null_rates_not_zero(tmp_path, sqlite_url):
    config, _ = make_workspace(tmp_path, sqlite_url, small_scenario(days=3))
    engine = engine_for(config)
    run_tick(engine, config, as_of=parse_time("2024-03-02T12:00:00Z"), notify=False)
    frame = _metrics(engine, config, WindowSpec(3600, 3600), segment="*")
    last = frame[frame["end"] == frame["end"].max()]
    assert (last["n_labeled"] == 0).all()
    assert last["recall"].isna().all() and last["precision"].isna().all()
    assert last["recall_low"].isna().all()


def test_intersections_add_a_series_per_pair_of_segment_values(tmp_path, sqlite_url):
    config, data = make_workspace(tmp_path, sqlite_url, small_scenario(), model_extra={"intersections": True})
    engine = engine_for(config)
    run_tick(engine, config, notify=False)
    frame = _metrics(engine, config, WindowSpec(7 * DAY, DAY), segment="sex&region")
    row = _row(frame, "2024-03-10T00:00:00Z", "routine", "sex&region", "F&south")
    predictions = data.predictions
    stamps = predictions["timestamp"].map(parse_time)
    end = parse_time("2024-03-10T00:00:00Z")
    inside = predictions[(stamps >= end - 7 * DAY) & (stamps < end) & (predictions["sex"] == "F")
                         & (predictions["region"] == "south")]
    assert row["n_predictions"] == len(inside)
