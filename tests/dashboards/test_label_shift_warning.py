"""The Classes page warns when the label-shift estimate (BBSE) and the score-based one (CBPE)
disagree on the chosen class's prevalence (issue 18), from the server-side callback.

A simulated workspace whose `critical` class has four times its prior odds from day 7 (the
simulator's `label_shift` fault: P(x | class) unchanged; `tests.estimation.label_shift_workspace`),
ingested by a real scheduler tick. The newest 7-day window before the shift shows no warning;
the newest one after it does, with the text of `monitor.estimation.label_shift` and figures
that match the records `monitor label-shift` prints and the true class mix; an ordinary class
in the same window is not flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.read import quality
from monitor.read.context import model_context
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from tests.dashboards.helpers import page, running_app, text_of
from tests.estimation.label_shift_workspace import DAY, END, make_workspace, realized_share


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("label_shift")
    return make_workspace(directory, f"sqlite:///{directory / 'monitor.db'}")


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
        record = quality.label_shift(conn, ctx, WindowSpec(7 * DAY, DAY, END, END), segment="*",
                                     classes=["critical"]).iloc[0]
    engine.dispose()
    assert record["label_shift_warning"] in text
    assert f"BBSE, {record['prevalence_bbse']:.3f}" in text and f"CBPE, {record['prevalence_cbpe']:.3f}" in text
    # the oracle: the true share of critical among the window's predictions (numpy on the truth)
    realized = realized_share("critical", END)
    assert realized > 0.09  # 3% before the shift
    assert abs(record["prevalence_bbse"] - realized) < 3.5 * record["prevalence_bbse_se"]
    assert realized - record["prevalence_cbpe"] > 0.03  # the scores calibrated on the reference lag


def test_no_warning_before_the_shift_nor_for_a_class_that_did_not_move(workspace: Path) -> None:
    text, ids = _warning(workspace, "critical", "2024-01-06")  # newest window ends 2024-01-07
    assert "classes-label-shift-warning" not in ids and "Class mix" not in text
    assert "calibration" in text  # the note itself is there
    text, ids = _warning(workspace, "urgent", None)
    assert "classes-label-shift-warning" not in ids
