"""The Classes page warns when the label-shift estimate (BBSE) and the score-based one (CBPE)
disagree on the chosen class's prevalence (issue 18), from the server-side callback.

A simulated workspace whose `critical` class has four times its prior odds from day 7 (the
simulator's `label_shift` fault: P(x | class) unchanged), ingested by a real scheduler tick.
The newest 7-day window before the shift shows no warning; the newest one after it does,
with the text of `monitor.estimation.label_shift` and figures that match the records
`monitor label-shift` prints; an ordinary class in the same window is not flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_config
from monitor.read import quality
from monitor.read.context import model_context
from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from tests.dashboards.helpers import page, running_app, text_of

DAY = 86400
SCENARIO = Scenario(start="2024-01-01", days=14, rows_per_day=1500, segments=("sex", "region"),
                    reference_rows=20_000, label_max_delay_days=5,
                    faults=[Fault(start_day=7, kind="label_shift", segment=None, value=None, prior_factor=4.0)])


DATA = simulate(SCENARIO, seed=21)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("label_shift")
    url = f"sqlite:///{directory / 'monitor.db'}"
    write_logs(DATA, directory, fmt="csv")
    path = write_config(directory, SCENARIO, database_url=url)
    engine = make_engine(url)
    upgrade(engine)
    run_tick(engine, load_config(path), as_of=SCENARIO.start_epoch + SCENARIO.days * DAY, notify=False)
    engine.dispose()
    return path


def _warning(workspace: Path, cls: str, last_day: str | None) -> tuple[str, list[str]]:
    with running_app(workspace):
        _, note = page("classes").update_best(None, "triage", "7d", None, last_day, cls)
    return text_of(note), [getattr(part, "id", None) for part in note]


def test_the_classes_page_warns_when_bbse_and_cbpe_disagree(workspace: Path) -> None:
    text, ids = _warning(workspace, "critical", None)
    assert "classes-label-shift-warning" in ids
    assert "Class mix:" in text and "disagree" in text and "monitor label-shift" in text
    # the figures shown are those of the label_shift record of the newest window, overall
    config = load_config(workspace)
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        ctx = model_context(conn, config.model("triage"))
        end = SCENARIO.start_epoch + SCENARIO.days * DAY
        record = quality.label_shift(conn, ctx, WindowSpec(7 * DAY, DAY, end, end), segment="*",
                                     classes=["critical"]).iloc[0]
    engine.dispose()
    assert record["label_shift_warning"] in text
    # the oracle: the true share of critical among the window's predictions (numpy on the truth)
    inside = (DATA.prediction_epoch >= end - 7 * DAY) & (DATA.prediction_epoch < end)
    truth = DATA.predictions[["prediction_id"]][inside].merge(DATA.truth, on="prediction_id")
    realized = float(np.mean(truth["label"].to_numpy() == "critical"))
    assert realized > 0.09  # 3% before the shift
    assert abs(record["prevalence_bbse"] - realized) < 3.5 * record["prevalence_bbse_se"]
    assert realized - record["prevalence_cbpe"] > 0.03  # the scores calibrated on the reference lag
    assert f"BBSE, {record['prevalence_bbse']:.3f}" in text and f"CBPE, {record['prevalence_cbpe']:.3f}" in text


def test_no_warning_before_the_shift_nor_for_a_class_that_did_not_move(workspace: Path) -> None:
    text, ids = _warning(workspace, "critical", "2024-01-06")  # newest window ends 2024-01-07
    assert "classes-label-shift-warning" not in ids and "Class mix" not in text
    assert "calibration" in text  # the note itself is there
    text, ids = _warning(workspace, "urgent", None)
    assert "classes-label-shift-warning" not in ids
