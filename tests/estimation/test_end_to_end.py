"""Estimated recall through the real pipeline: simulated log files -> run_tick ->
metrics_frame. Oracles: numpy sums of the raw scores in the files, sklearn on the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score

from monitor.config import load_config
from monitor.context import load_context
from monitor.estimation.service import calibration_report
from monitor.metrics.service import metrics_frame
from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from tests.estimation.helpers import epoch_seconds

DAY = 86400


def test_metrics_carry_the_estimate_where_labels_have_not_arrived(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(days=8, rows_per_day=600, reference_rows=6000, segments=("sex", "region"))
    data = simulate(scenario, seed=21)
    write_logs(data, tmp_path, fmt="csv")
    config = load_config(write_config(tmp_path, scenario, database_url=db_url,
                                      model_extra={"estimation": {"calibration": "none"}}))
    engine = make_engine(config.database_url)
    end_of_data = scenario.start_epoch + scenario.days * DAY
    run_tick(engine, config, as_of=end_of_data, notify=False)  # the last days' labels are not visible yet
    spec = WindowSpec(window=2 * DAY, step=DAY)
    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
        metrics = metrics_frame(conn, ctx, spec, segment="*,region", as_of=end_of_data)
        report = calibration_report(conn, ctx)
    engine.dispose()
    # the reference went through the estimation hook: one calibration record per class
    assert report["class"].tolist() == list(scenario.classes)
    assert not report["applied"].any()  # calibration = "none"

    predictions = data.predictions.assign(ts=epoch_seconds(data.predictions["timestamp"]))
    predictions = predictions.merge(data.truth.rename(columns={"label": "truth"}), on="prediction_id")
    metrics["end_epoch"] = epoch_seconds(metrics["end"])
    critical = metrics[metrics["class"] == "critical"]
    assert len(critical) > 20
    for record in critical.itertuples(index=False):
        window = predictions[(predictions["ts"] >= record.end_epoch - spec.window) & (predictions["ts"] < record.end_epoch)]
        if record.segment == "region":
            window = window[window["region"] == record.segment_value]
        p = window["score_critical"].to_numpy()
        predicted = (window["prediction"] == "critical").to_numpy()
        assert np.isclose(record.recall_estimated, p[predicted].sum() / p.sum(), rtol=1e-9)
    # the last window has few labels, yet its estimate is there and close to the final truth
    last = critical[(critical["segment"] == "*")].iloc[-1]
    assert last["label_coverage"] < 0.5
    window = predictions[(predictions["ts"] >= last["end_epoch"] - spec.window) & (predictions["ts"] < last["end_epoch"])]
    realized = recall_score(window["truth"] == "critical", window["prediction"] == "critical")
    assert abs(last["recall_estimated"] - realized) < 0.2
    assert pd.notna(last["recall_estimated"])
