"""Rolling recalibration on matured labels, on real databases (SQLite and PostgreSQL).

Predictions and labels go through the core ingest (`ingest_frame`), so the labels the refit
reads are the ones the monitor stored. Oracles: sklearn's IsotonicRegression fitted on the
raw rows of the fit span, pandas masks for the span and the label counts.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sqlalchemy import func, select

from monitor.config import EstimationSettings, ModelConfig
from monitor.context import load_context
from monitor.estimation import aggregate, recalibrate, service
from monitor.estimation.models import EstimationCalibration
from monitor.ingest.pipeline import ingest_frame
from monitor.metrics.service import metrics_frame
from monitor.store.models import Prediction
from monitor.store.windows import WindowSpec
from monitor.timeutil import to_iso
from tests.estimation.helpers import CLASSES, canonical, random_calibrated

DAY = 86400
START = 1_704_067_200  # 2024-01-01


def context(conn, name: str = "triage", **settings):  # type: ignore[no-untyped-def]
    estimation = {"calibration": "isotonic", "recalibration_span": "4d", "recalibration_min_positives": 20, **settings}
    config = ModelConfig(name=name, classes=CLASSES, segments=["sex", "region"], bucket="1h",
                         estimation=EstimationSettings(**estimation))
    return load_context(conn, config)


def labels_of(frame: pd.DataFrame, delay: int) -> pd.DataFrame:
    return pd.DataFrame({"prediction_id": frame["prediction_id"], "label": frame["label"],
                         "label_timestamp": frame["timestamp"] + delay})


def isotonic_oracle(fit: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Calibrated, renormalised probabilities of `rows` from maps fitted on `fit` (sklearn)."""
    out = np.column_stack([
        IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
        .fit(fit[f"score_{c}"], fit["label"] == c).predict(rows[f"score_{c}"]) for c in CLASSES
    ])
    return out / out.sum(axis=1, keepdims=True)


def assert_isotonic_maps(maps: dict, fit: pd.DataFrame) -> None:
    """The stored per-class maps are sklearn's isotonic regression on `fit`'s (score, label) pairs."""
    fresh = np.linspace(0, 1, 201)
    for c in CLASSES:
        oracle = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(fit[f"score_{c}"], fit["label"] == c)
        np.testing.assert_allclose(np.interp(fresh, maps[c]["x"], maps[c]["y"]), oracle.predict(fresh), atol=1e-9)


def test_a_rolling_calibration_is_fitted_on_mature_labelled_predictions_only(engine) -> None:  # type: ignore[no-untyped-def]
    # 10 days of over-confident scores; days 0-7 labelled (one day late), days 8-9 not yet
    data = random_calibrated(6000, seed=31, days=10, sharpen=2.0)
    as_of = START + 10 * DAY
    with engine.begin() as conn:
        ctx = context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(3000, seed=32, sharpen=2.0)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=as_of)
        labelled = data[data["timestamp"] < START + 8 * DAY]
        ingest_frame(conn, ctx, "labels", labels_of(labelled, DAY).iloc[::2], as_of=as_of)  # half of them
        age = 3 * DAY  # labels usually complete after 3 days
        new_id = recalibrate.recalibrate(conn, ctx, as_of, age)
        again = recalibrate.recalibrate(conn, ctx, as_of + 3600, age)  # not due yet (every 1d)
        table = recalibrate.CALIBRATIONS
        stored = SimpleNamespace(**conn.execute(select(table).where(table.c.id == new_id)).mappings().one())
        kinds = conn.execute(select(EstimationCalibration.kind).order_by(EstimationCalibration.id)).scalars().all()
        kept = conn.execute(select(func.min(Prediction.ts)).where(Prediction.scores.is_not(None))).scalar()
    assert new_id is not None and again is None
    assert kinds == ["reference", "rolling"]
    assert (stored.fit_start, stored.fit_end) == (as_of - 3 * DAY - 4 * DAY, as_of - 3 * DAY)
    fit = labelled.iloc[::2]
    fit = fit[(fit["timestamp"] >= stored.fit_start) & (fit["timestamp"] < stored.fit_end)]
    assert stored.n_labels == len(fit)
    assert stored.n_positive == {c: int((fit["label"] == c).sum()) for c in CLASSES}
    assert_isotonic_maps(stored.maps, fit)  # sklearn's, on the span's raw (score, label) pairs
    assert kept == data["timestamp"].min()  # nothing older than two spans before the fit to prune yet


def test_each_prediction_is_estimated_with_the_calibration_fitted_before_it(engine) -> None:  # type: ignore[no-untyped-def]
    history = random_calibrated(5000, seed=33, days=8, sharpen=2.0)
    later = random_calibrated(3000, seed=34, start=START + 4 * DAY, days=8, sharpen=2.0)
    later["prediction_id"] = "n" + later["prediction_id"]
    reference = random_calibrated(3000, seed=35, start=START - 10 * DAY, sharpen=2.0)
    as_of = START + 8 * DAY
    with engine.begin() as conn:
        ctx = context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, reference))
        ingest_frame(conn, ctx, "predictions", history.drop(columns=["label"]), as_of=as_of)
        ingest_frame(conn, ctx, "labels", labels_of(history, 3600), as_of=as_of)
        calibration_id = recalibrate.recalibrate(conn, ctx, as_of, 2 * DAY)  # fit on days 2-6
        fit_end = as_of - 2 * DAY
        # late predictions of days 4-12: those before the fit's end keep the reference one
        ingest_frame(conn, ctx, "predictions", later.drop(columns=["label"]), as_of=START + 20 * DAY)
        frame = service.estimated_frame(conn, ctx, WindowSpec(window=DAY, step=DAY), segment_sets=[()],
                                        ends=np.arange(START + DAY, START + 13 * DAY, DAY))
        stored = pd.read_sql(select(service.EXPECTED_COUNTS), conn)
        records = metrics_frame(conn, ctx, WindowSpec(window=DAY, step=DAY), classes=["critical"], segment="*",
                                as_of=START + 20 * DAY)
    fit = history[(history["timestamp"] >= fit_end - 4 * DAY) & (history["timestamp"] < fit_end)]
    # oracle for the critical class over the later batch, split at fit_end
    late = later.reset_index(drop=True)
    after = late["timestamp"].to_numpy() >= fit_end
    probabilities = np.where(after[:, None], isotonic_oracle(fit, late),
                             isotonic_oracle(reference, late))
    day_ends = (late["timestamp"] // DAY + 1) * DAY
    for end, day in frame[frame["class"] == "critical"].groupby("end"):
        if end <= START + 8 * DAY:
            continue  # days 4-7 mix both batches; the later days hold only the late batch
        mine = (day_ends == end).to_numpy()
        p = probabilities[mine, 2]
        predicted = (late.loc[mine, "prediction"] == "critical").to_numpy()
        assert day["recall_estimated"].iloc[0] == pytest.approx(p[predicted].sum() / p.sum(), rel=1e-5)
        assert day["calibration"].iloc[0] == "rolling" and day["calibration_id"].iloc[0] == calibration_id
        assert (day["calibration_fit_start"].iloc[0], day["calibration_fit_end"].iloc[0]) == (fit_end - 4 * DAY, fit_end)
        assert day["calibration_labels"].iloc[0] == len(fit)
    early = frame[(frame["class"] == "critical") & (frame["end"] <= START + 2 * DAY)]
    assert (early["calibration"] == "reference").all()
    # the metrics records (monitor metrics, GET /metrics) carry the same trace, times as ISO
    by_end = records.set_index("end")
    for end in range(START + 9 * DAY, START + 13 * DAY, DAY):
        record = by_end.loc[to_iso(end)]
        assert (record["calibration"], record["calibration_id"], record["calibration_labels"]) == \
            ("rolling", calibration_id, len(fit))
        assert (record["calibration_fit_start"], record["calibration_fit_end"]) == \
            (to_iso(fit_end - 4 * DAY), to_iso(fit_end))
    assert (by_end.loc[[to_iso(START + DAY), to_iso(START + 2 * DAY)], "calibration"] == "reference").all()
    assert stored["n_scored"].sum() == 3 * (len(history) + len(later))


def test_too_few_mature_labels_keep_the_reference_calibration(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(2000, seed=36, days=6)
    as_of = START + 6 * DAY
    with engine.begin() as conn:
        ctx = context(conn, recalibration_min_positives=10_000)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(3000, seed=37)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=as_of)
        ingest_frame(conn, ctx, "labels", labels_of(data, 3600), as_of=as_of)
        assert recalibrate.recalibrate(conn, ctx, as_of, None) is None  # no label arrival curve yet
        assert recalibrate.recalibrate(conn, ctx, as_of, DAY) is None
        assert recalibrate.recalibrate(conn, ctx, as_of + 3600, DAY) is None  # the next attempt is a day away
        table = recalibrate.CALIBRATIONS
        attempts = conn.execute(select(table.c.kind, table.c.n_positive, table.c.fit_end).order_by(table.c.id)).all()
        frame = service.estimated_frame(conn, ctx, WindowSpec(window=2 * DAY, step=DAY), segment_sets=[()])
        report = recalibrate.usable(conn, ctx)
    assert report[0] is not None and report[1] == []
    # the attempt is on record: when, on what span, how few positives
    fit = data[(data["timestamp"] >= as_of - DAY - 4 * DAY) & (data["timestamp"] < as_of - DAY)]
    assert [kind for kind, _, _ in attempts] == ["reference", "skipped"] and attempts[1][2] == as_of - DAY
    assert attempts[1][1] == {c: int((fit["label"] == c).sum()) for c in CLASSES}
    assert set(frame["calibration"]) == {"reference"}
    assert frame["calibration_labels"].eq(3000).all()  # the reference's labelled rows
    assert (frame["calibration_error"] == 0).all() and frame["interval_coverage"].isna().all()


def test_switched_off_it_stores_no_scores_and_fits_nothing(sqlite_url) -> None:  # type: ignore[no-untyped-def]
    from monitor.store.db import make_engine

    data = random_calibrated(1000, seed=38, days=4)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = context(conn, recalibrate=False)
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=START + 4 * DAY)
        ingest_frame(conn, ctx, "labels", labels_of(data, 3600), as_of=START + 4 * DAY)
        assert recalibrate.recalibrate(conn, ctx, START + 4 * DAY, DAY) is None
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar() == len(data)
        assert conn.execute(select(func.count()).where(Prediction.scores.is_not(None))).scalar() == 0
    engine.dispose()


def test_mature_pairs_read_in_chunks_are_the_labelled_rows_of_the_span(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The refit's (scores, label) pairs are read in chunks (bounded memory): with chunks of 7
    rows they are still exactly the labelled predictions of the span. Oracle: pandas masks."""
    data = random_calibrated(600, seed=35, days=4)
    with engine.begin() as conn:
        ctx = context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(1000, seed=36)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=START + 5 * DAY)
        ingest_frame(conn, ctx, "labels", labels_of(data, 3600).iloc[::3], as_of=START + 5 * DAY)
        monkeypatch.setattr(recalibrate, "PAIR_CHUNK", 7)
        scores, labels = recalibrate.mature_pairs(conn, ctx, START + DAY, START + 3 * DAY)
    labelled = data.iloc[::3]
    expected = labelled[(labelled["timestamp"] >= START + DAY) & (labelled["timestamp"] < START + 3 * DAY)]
    columns = [f"score_{c}" for c in CLASSES]
    found = pd.DataFrame(scores, columns=columns).assign(label=labels).sort_values([*columns, "label"])
    wanted = expected[[*columns, "label"]].sort_values([*columns, "label"])
    assert len(found) == len(wanted) > 3 * 7
    np.testing.assert_allclose(found[columns].to_numpy(), wanted[columns].to_numpy(dtype=float), rtol=1e-12)
    assert found["label"].tolist() == wanted["label"].tolist()


def test_the_pairs_cursor_is_planned_for_all_its_rows_and_the_setting_put_back(engine) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL plans a named cursor for its first tenth of rows (`cursor_tuple_fraction`),
    which favours a nested loop; the refit reads every pair, so its cursor is declared with the
    fraction at 1, and the transaction's own value is back once it is. Oracle: the setting the
    server reports when the cursor is declared."""
    if engine.dialect.name != "postgresql":
        pytest.skip("cursor_tuple_fraction is PostgreSQL's")
    data = random_calibrated(300, seed=37, days=3)
    seen: list[str] = []
    with engine.begin() as conn:
        ctx = context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(1000, seed=38)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=START + 4 * DAY)
        ingest_frame(conn, ctx, "labels", labels_of(data, 3600), as_of=START + 4 * DAY)
        driver = conn.connection.driver_connection
        driver.execute("SET LOCAL cursor_tuple_fraction = 0.3")  # type: ignore[union-attr]
        original = driver.cursor  # type: ignore[union-attr]

        class Declared:  # the named cursor: notes the setting when it is declared
            def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
                object.__setattr__(self, "inner", inner)

            def execute(self, *a, **k):  # type: ignore[no-untyped-def]
                seen.append(driver.execute("SELECT current_setting('cursor_tuple_fraction')")  # type: ignore[union-attr]
                            .fetchone()[0])
                return self.inner.execute(*a, **k)

            def __getattr__(self, name):  # type: ignore[no-untyped-def]
                return getattr(self.inner, name)

            def __setattr__(self, name, value) -> None:  # type: ignore[no-untyped-def]
                setattr(self.inner, name, value)

        def watching(*args, **kwargs):  # type: ignore[no-untyped-def]
            inner = original(*args, **kwargs)
            return Declared(inner) if kwargs.get("name") else inner

        driver.cursor = watching  # type: ignore[union-attr]
        try:
            scores, _ = recalibrate.mature_pairs(conn, ctx, START, START + 3 * DAY)
        finally:
            driver.cursor = original  # type: ignore[union-attr]
        after = driver.execute("SELECT current_setting('cursor_tuple_fraction')").fetchone()[0]  # type: ignore[union-attr]
    assert seen == ["1"] and after == "0.3" and len(scores) == 300


def test_kept_scores_are_exact_and_a_refit_clears_those_older_than_two_spans(engine) -> None:  # type: ignore[no-untyped-def]
    """`predictions.scores` holds each prediction's scores bit for bit (NULL for one without
    every score); a refit clears them for predictions older than two spans before its fit end
    and keeps the rest. Oracle: the input frame."""
    data = random_calibrated(1200, seed=41, days=12)
    data.loc[data.index[7], f"score_{CLASSES[1]}"] = np.nan  # incomplete: counted, no scores kept
    as_of = START + 12 * DAY
    with engine.begin() as conn:
        ctx = context(conn)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(1000, seed=42)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=as_of)
        before = dict(conn.execute(select(Prediction.prediction_id, Prediction.scores)).all())
        ingest_frame(conn, ctx, "labels", labels_of(data, 3600), as_of=as_of)
        assert recalibrate.recalibrate(conn, ctx, as_of, DAY) is not None  # fit end: day 11
        after = dict(conn.execute(select(Prediction.prediction_id, Prediction.scores)).all())
    columns = [f"score_{c}" for c in CLASSES]
    complete = data[columns].notna().all(axis=1)
    assert set(before) == set(data["prediction_id"])
    assert {i for i, s in before.items() if s is None} == set(data.loc[~complete, "prediction_id"]) != set()
    kept = data[complete]
    np.testing.assert_array_equal(
        recalibrate.unpack_scores([before[i] for i in kept["prediction_id"]], len(CLASSES)),
        kept[columns].to_numpy(dtype=np.float64))  # exact
    cut = START + 11 * DAY - 2 * 4 * DAY
    assert {i for i, s in after.items() if s is not None} == set(kept.loc[kept["timestamp"] >= cut, "prediction_id"])
    assert all(after[i] == before[i] for i, s in after.items() if s is not None)


def test_a_busy_span_is_fitted_on_a_uniform_sample_of_about_max_pairs(engine) -> None:  # type: ignore[no-untyped-def]
    """A span holding more labelled predictions than `recalibration_max_pairs` is fitted on
    those whose content hash falls in the sampled share (|hash % 100000| < share): about
    max_pairs of them. Oracle: the stored hashes filtered in numpy (C remainder, `np.fmod`),
    and sklearn's isotonic regression on that sample."""
    data = random_calibrated(12000, seed=51, days=10, sharpen=2.0)
    as_of = START + 10 * DAY
    with engine.begin() as conn:
        ctx = context(conn, recalibration_max_pairs=1000)
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(3000, seed=52, sharpen=2.0)))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=as_of)
        labelled = data[data["timestamp"] < START + 8 * DAY]
        ingest_frame(conn, ctx, "labels", labels_of(labelled, DAY), as_of=as_of)
        new_id = recalibrate.recalibrate(conn, ctx, as_of, 3 * DAY)
        table = recalibrate.CALIBRATIONS
        stored = SimpleNamespace(**conn.execute(select(table).where(table.c.id == new_id)).mappings().one())
        hashes = pd.DataFrame(conn.execute(select(Prediction.prediction_id, Prediction.content_hash)).all(),
                              columns=["prediction_id", "content_hash"])
    span = labelled[(labelled["timestamp"] >= stored.fit_start) & (labelled["timestamp"] < stored.fit_end)]
    share = 100_000 * 1000 // len(span)  # the documented share of 100,000: max_pairs of the span's pairs
    assert share < 25_000
    span = span.merge(hashes, on="prediction_id", validate="1:1")
    remainder = np.fmod(span["content_hash"].to_numpy(np.int64), 100_000)
    fit = span[np.abs(remainder) < share]
    assert 800 <= stored.n_labels == len(fit) <= 1200
    assert stored.n_positive == {c: int((fit["label"] == c).sum()) for c in CLASSES}
    assert_isotonic_maps(stored.maps, fit)


def test_the_refit_does_not_depend_on_the_order_the_database_returns_the_pairs(engine) -> None:  # type: ignore[no-untyped-def]
    """The same predictions and labels stored in opposite orders (two models of one database)
    give the same pairs, in the same order, and so the same fit, held-out split and all, with
    `calibration = "auto"` (whose choice rests on the held-out ECEs)."""
    data = random_calibrated(4000, seed=61, days=10, sharpen=2.0)
    labelled = data[data["timestamp"] < START + 8 * DAY]
    as_of = START + 10 * DAY
    found = {}
    with engine.begin() as conn:
        for name, order in (("forward", slice(None)), ("backward", slice(None, None, -1))):
            ctx = context(conn, name, calibration="auto")
            aggregate.on_reference(conn, ctx, canonical(conn, ctx, random_calibrated(3000, seed=62, sharpen=2.0)))
            ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]).iloc[order], as_of=as_of)
            ingest_frame(conn, ctx, "labels", labels_of(labelled, DAY).iloc[order], as_of=as_of)
            pairs = recalibrate.mature_pairs(conn, ctx, START + DAY, START + 7 * DAY)
            new_id = recalibrate.recalibrate(conn, ctx, as_of, 3 * DAY)
            table = recalibrate.CALIBRATIONS
            found[name] = pairs, conn.execute(select(table.c.maps, table.c.n_labels).where(table.c.id == new_id)).one()
    (scores, labels), fitted = found["forward"]
    (scores_back, labels_back), fitted_back = found["backward"]
    assert len(labels) > 1000
    np.testing.assert_array_equal(scores, scores_back)
    assert labels.tolist() == labels_back.tolist()
    assert fitted == fitted_back
