"""The blended (best current) recall of partly labelled windows, on SQLite and PostgreSQL.

Oracles: sklearn's recall on the labelled rows where every label is in; the estimate itself
where none is; numpy sums over the raw rows for the partial windows (labelled part from the
truth, unlabelled part from the raw scores in proportion, as docs/estimation.md states).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score

from monitor.config import EstimationSettings, ModelConfig
from monitor.context import load_context
from monitor.estimation.blend import BLEND_COLUMNS, blended_frame
from monitor.ingest.pipeline import ingest_frame
from monitor.read import quality
from monitor.store.windows import WindowSpec
from tests.estimation.helpers import CLASSES, random_calibrated

DAY = 86400
START = 1_704_067_200


def test_blend_adds_realized_labelled_counts_to_the_estimate_of_the_rest(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(4000, seed=51, days=6)
    rng = np.random.default_rng(52)
    day = (data["timestamp"] - START) // DAY
    # days 0-1 fully labelled, days 2-3 about half, days 4-5 not at all
    labelled = (day <= 1) | ((day <= 3) & (rng.random(len(data)) < 0.5))
    with engine.begin() as conn:
        config = ModelConfig(name="triage", classes=CLASSES, segments=["sex", "region"], bucket="1h",
                             estimation=EstimationSettings(calibration="none", recalibrate=False))
        ctx = load_context(conn, config)
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=START + 6 * DAY)
        labels = data.loc[labelled, ["prediction_id", "label"]].assign(label_timestamp=START + 6 * DAY)
        ingest_frame(conn, ctx, "labels", labels, as_of=START + 6 * DAY)
        frame = blended_frame(conn, ctx, WindowSpec(window=2 * DAY, step=2 * DAY), segment_sets=[(), ("region",)],
                              ends=np.array([START + 2 * DAY, START + 4 * DAY, START + 6 * DAY]))
        read = quality.best_recall(conn, ctx, WindowSpec(window=2 * DAY, step=2 * DAY), classes=["critical"])
        metrics = quality.metrics(conn, ctx, WindowSpec(window=2 * DAY, step=2 * DAY), segment="*,region",
                                  as_of=START + 6 * DAY)
    # `monitor metrics` carries the same best value (and the realized one without an estimate)
    merged = metrics.merge(read.rename(columns={"recall_best": "best", "recall_best_low": "best_low"}),
                           on=["end", "segment", "segment_value", "class"])
    assert len(merged) >= 3
    np.testing.assert_allclose(merged["recall_best"], merged["best"], rtol=1e-9)
    np.testing.assert_allclose(merged["recall_best_low"], merged["best_low"], rtol=1e-9)
    assert list(read.columns) == BLEND_COLUMNS and set(read["class"]) == {"critical"}
    assert read["end"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    assert list(frame.columns) == BLEND_COLUMNS
    assert len(frame) == 3 * 4 * len(CLASSES)  # 3 ends x (overall + 3 regions) x classes
    for record in frame.itertuples(index=False):
        mask = ((data["timestamp"] >= record.end - 2 * DAY) & (data["timestamp"] < record.end)).to_numpy()
        if record.segment == "region":
            mask = mask & (data["region"] == record.segment_value).to_numpy()
        rows, known = data[mask], labelled[mask].to_numpy()
        truth = (rows["label"] == record[3]).to_numpy()
        mine = (rows["prediction"] == record[3]).to_numpy()
        p = rows[f"score_{record[3]}"].to_numpy()
        assert record.n_predictions == len(rows) and record.n_labelled == known.sum()
        if known.all():  # every label in: the realized recall, exactly
            oracle = recall_score(truth, mine)
            assert record.recall_best == pytest.approx(oracle) and record.recall_realized == pytest.approx(oracle)
            assert record.recall_best_low == pytest.approx(oracle) == record.recall_best_high
        elif not known.any():  # none: the estimate
            assert record.recall_best == pytest.approx(record.recall_estimated)
            assert record.recall_best == pytest.approx(p[mine].sum() / p.sum())
        else:
            unlabelled_mine = 1 - known[mine].mean()
            unlabelled_rest = 1 - known[~mine].mean()
            tp = (truth & mine & known).sum() + p[mine].sum() * unlabelled_mine
            fn = (truth & ~mine & known).sum() + p[~mine].sum() * unlabelled_rest
            assert record.recall_best == pytest.approx(tp / (tp + fn))
            assert record.recall_best_low < record.recall_best < record.recall_best_high
    partial = frame[(frame["end"] == START + 4 * DAY) & (frame["segment"] == "*")]
    assert partial["labelled_share"].between(0.4, 0.6).all()


def test_without_scores_there_is_no_blend(engine) -> None:  # type: ignore[no-untyped-def]
    data = random_calibrated(300, seed=53).drop(columns=[f"score_{c}" for c in CLASSES])
    with engine.begin() as conn:
        ctx = load_context(conn, ModelConfig(name="triage", classes=CLASSES, segments=["sex"], bucket="1h"))
        ingest_frame(conn, ctx, "predictions", data.drop(columns=["label"]), as_of=START + 3 * DAY)
        frame = blended_frame(conn, ctx, WindowSpec(window=DAY, step=DAY), segment_sets=[()])
    assert frame.empty and list(frame.columns) == BLEND_COLUMNS
