"""The ingest hooks and the read path on real databases (SQLite and PostgreSQL).

Expected counts are checked against numpy sums on the raw rows; calibrated counts against
sklearn's IsotonicRegression fitted on the raw reference; windows against masks on raw rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sqlalchemy import func, select

from monitor.estimation import aggregate, service
from monitor.estimation.models import EstimationCalibrator, ExpectedCount
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from tests.estimation.helpers import CLASSES, canonical, make_context, random_calibrated

DAY = 86400


def stored_counts(conn, ctx) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    table = ExpectedCount.__table__
    rows = conn.execute(select(table).where(table.c.model_id == ctx.model_id)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def oracle_counts(rows: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Expected counts per (bucket, slice, class) by plain masked numpy sums."""
    out = []
    for (bucket, slice_id), index in rows.groupby(["bucket_start", "slice_id"]).indices.items():
        predicted = rows["predicted"].to_numpy()[index]
        for c, name in enumerate(CLASSES):
            p = probabilities[index, c]
            mine = predicted == name
            out.append({
                "bucket_start": bucket, "slice_id": slice_id, "class_name": name,
                "n_scored": len(index), "n_predicted": int(mine.sum()),
                "exp_tp": p[mine].sum(), "exp_fn": p[~mine].sum(),
                "exp_fp": (1 - p[mine]).sum(), "exp_tn": (1 - p[~mine]).sum(),
                "var_tp": (p * (1 - p))[mine].sum(), "var_fn": (p * (1 - p))[~mine].sum(),
            })
    return pd.DataFrame(out)


def assert_same_counts(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    keys = ["bucket_start", "slice_id", "class_name"]
    merged = expected.merge(actual, on=keys, suffixes=("", "_db"), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    for column in aggregate.VALUE_COLUMNS:
        np.testing.assert_allclose(merged[f"{column}_db"], merged[column], rtol=1e-9, atol=1e-9)


def test_it_stores_expected_counts_as_sums_of_raw_scores(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(3000, seed=1)
    with engine.begin() as conn:
        ctx = make_context(conn)
        rows = canonical(conn, ctx, data)
        aggregate.on_predictions(conn, ctx, rows.iloc[:1700])  # two batches add up
        aggregate.on_predictions(conn, ctx, rows.iloc[1700:])
        stored = stored_counts(conn, ctx)
    assert_same_counts(stored, oracle_counts(rows, rows[[f"score_{c}" for c in CLASSES]].to_numpy()))


def test_it_skips_rows_without_every_score_and_batches_without_score_columns(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(500, seed=2)
    with engine.begin() as conn:
        ctx = make_context(conn)
        rows = canonical(conn, ctx, data)
        rows.loc[rows.index[:40], "score_urgent"] = np.nan
        aggregate.on_predictions(conn, ctx, rows)
        aggregate.on_predictions(conn, ctx, rows.drop(columns=["score_critical"]))
        total = conn.execute(select(func.sum(ExpectedCount.n_scored)).where(ExpectedCount.class_name == "critical")).scalar()
    assert total == 460


def test_reference_calibrators_are_stored_replaced_and_applied(engine) -> None:  # type: ignore[no-untyped-def]
    reference = random_calibrated(6000, seed=3, sharpen=0.4)  # badly calibrated: under-confident
    data = random_calibrated(2000, seed=4, sharpen=0.4)
    with engine.begin() as conn:
        ctx = make_context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(3000, seed=9)))
        ref = canonical(conn, ctx, reference)
        aggregate.on_reference(conn, ctx, ref)  # replaces the first calibrators
        n_calibrators = conn.execute(select(func.count()).select_from(EstimationCalibrator)).scalar()
        report = service.calibration_report(conn, ctx)
        rows = canonical(conn, ctx, data)
        aggregate.on_predictions(conn, ctx, rows)
        stored = stored_counts(conn, ctx)
    assert n_calibrators == len(CLASSES)
    assert report["class"].tolist() == CLASSES
    assert report["applied"].all() and report["badly_calibrated"].all()
    assert (report["ece_after"] < report["ece_before"]).all()
    assert report["warning"].str.contains("badly calibrated").all()
    # oracle: sklearn isotonic per class on the whole reference, then rows renormalised
    calibrated = np.column_stack([
        IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
        .fit(reference[f"score_{c}"], reference["label"] == c)
        .predict(data[f"score_{c}"])
        for c in CLASSES
    ])
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    assert_same_counts(stored, oracle_counts(rows, calibrated))


def test_estimated_frame_matches_window_sums_of_raw_rows(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(4000, seed=5, days=6)
    with engine.begin() as conn:
        ctx = make_context(conn, calibration="none")
        rows = canonical(conn, ctx, data)
        aggregate.on_predictions(conn, ctx, rows)
        spec = WindowSpec(window=2 * DAY, step=DAY)
        frame = service.estimated_frame(conn, ctx, spec, segment_sets=[(), ("region",), ("sex", "region")])
    assert list(frame.columns) == service.ESTIMATE_COLUMNS
    assert set(frame["segment"]) == {"*", "region", "sex&region"}
    checked = 0
    for record in frame.itertuples(index=False):
        mask = (rows["ts"] >= record.end - spec.window) & (rows["ts"] < record.end)
        if record.segment == "region":
            mask &= rows["region"] == record.segment_value
        elif record.segment == "sex&region":
            sex, region = record.segment_value.split("&")
            mask &= (rows["sex"] == sex) & (rows["region"] == region)
        window = rows[mask]
        p = window[f"score_{record[3]}"].to_numpy()
        mine = (window["predicted"] == record[3]).to_numpy()
        assert record.n_scored == len(window)
        if len(window) == 0:
            assert np.isnan(record.recall_estimated)
            continue
        assert record.recall_estimated == pytest.approx(p[mine].sum() / p.sum())
        assert record.support_estimated == pytest.approx(p.sum())
        if mine.any():
            assert record.precision_estimated == pytest.approx(p[mine].mean())
        assert record.recall_estimated_low <= record.recall_estimated <= record.recall_estimated_high
        checked += 1
    assert checked > 50


def test_a_model_without_scores_has_no_estimates(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(300, seed=6).drop(columns=[f"score_{c}" for c in CLASSES])
    with engine.begin() as conn:
        ctx = make_context(conn)
        rows = canonical(conn, ctx, data)
        aggregate.on_reference(conn, ctx, rows)
        aggregate.on_predictions(conn, ctx, rows)
        frame = service.estimated_frame(conn, ctx, WindowSpec(DAY, DAY), segment_sets=[()])
        report = service.calibration_report(conn, ctx)
    assert frame.empty and list(frame.columns) == service.ESTIMATE_COLUMNS
    assert report.empty


def test_a_binary_model_gets_one_vs_rest_estimates_for_both_classes(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    classes = ["no", "yes"]
    data = random_calibrated(2000, seed=8, classes=classes)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = make_context(conn, classes=classes, calibration="none")
        rows = canonical(conn, ctx, data)
        aggregate.on_predictions(conn, ctx, rows)
        frame = service.estimated_frame(conn, ctx, WindowSpec(7 * DAY, DAY), segment_sets=[()])  # last end: every row
    engine.dispose()
    last = frame[frame["end"] == frame["end"].max()].set_index("class")
    p = rows["score_yes"].to_numpy()
    yes = (rows["predicted"] == "yes").to_numpy()
    assert last.loc["yes", "recall_estimated"] == pytest.approx(p[yes].sum() / p.sum())
    assert last.loc["no", "recall_estimated"] == pytest.approx((1 - p)[~yes].sum() / (1 - p).sum())
