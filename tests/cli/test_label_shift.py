"""`monitor label-shift` (docs/contract.md §3) on a simulated label-shift workspace
(`tests.estimation.label_shift_workspace`): json records of the contract, BBSE following the
true class mix (numpy on the simulated truth) and equal to numpy's solve on the reference
confusion matrix (sklearn), the warning only after the shift, `--disagree-only`, `--class`,
usage errors, and the table's default columns; `monitor metrics` leads its table with the
best current recall when the model logs scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import confusion_matrix

from monitor.cli import main
from monitor.timeutil import parse_time
from tests.estimation.label_shift_workspace import (
    DAY,
    END,
    SHIFT,
    make_workspace,
    realized_share,
    simulated,
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("label_shift_cli")
    return make_workspace(directory, f"sqlite:///{directory / 'monitor.db'}")


def _run(config: Path, *args: str, columns: int = 100) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env={"COLUMNS": str(columns)})
    return result.exit_code, result.stdout, result.stderr


def test_label_shift_json_follows_the_class_mix_and_warns_after_the_shift(workspace: Path) -> None:
    code, out, err = _run(workspace, "label-shift", "--segment", "*", "--format", "json")
    assert code == 0, err
    frame = pd.DataFrame(json.loads(out))
    assert list(frame.columns) == ["model", "window", "end", "class", "segment", "segment_value", "prevalence_bbse",
                                   "prevalence_bbse_se", "precision_bbse", "prevalence_cbpe", "precision_cbpe",
                                   "n_predictions", "label_shift_warning"]
    frame["epoch"] = frame["end"].map(parse_time)
    data = simulated()
    classes = list(data.scenario.classes)
    reference = confusion_matrix(data.reference["label"], data.reference["prediction"], labels=classes)
    conditional = reference.T / reference.sum(axis=1)  # P(predicted | true), a column per true class
    for end in (SHIFT, END):  # the window before the shift and the newest one, all after it
        window = frame[frame["epoch"] == end].set_index("class").loc[classes]
        inside = (data.prediction_epoch >= end - 7 * DAY) & (data.prediction_epoch < end)
        shares = data.predictions["prediction"][inside].value_counts(normalize=True).reindex(classes).to_numpy()
        solved = np.linalg.solve(conditional, shares)
        np.testing.assert_allclose(window["prevalence_bbse"], solved / solved.sum(), rtol=1e-6)
        assert window["n_predictions"].tolist() == [int(inside.sum())] * len(classes)
        critical = window.loc["critical"]
        realized = realized_share("critical", end)
        assert abs(critical["prevalence_bbse"] - realized) < 3.5 * critical["prevalence_bbse_se"]
        shifted = end > SHIFT
        assert pd.notna(critical["label_shift_warning"]) == shifted
        if shifted:
            assert realized - critical["prevalence_cbpe"] > 0.03 and "disagree" in critical["label_shift_warning"]
        else:
            assert abs(critical["prevalence_cbpe"] - realized) < 0.01


def test_disagree_only_class_and_usage_errors(workspace: Path) -> None:
    code, out, _ = _run(workspace, "label-shift", "--disagree-only", "--class", "critical", "--format", "json")
    assert code == 0
    records = json.loads(out)
    assert records and all(r["label_shift_warning"] and r["class"] == "critical" for r in records)
    assert min(parse_time(r["end"]) for r in records) > SHIFT  # nothing flagged before the shift
    code, _, err = _run(workspace, "label-shift", "--class", "nope")
    assert code == 2 and "nope" in err and "critical" in err
    code, _, err = _run(workspace, "label-shift", "--segment", "nope")
    assert code == 2 and "nope" in err
    code, out, _ = _run(workspace, "label-shift", "--segment", "region", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("model,window,end,class,segment,segment_value,prevalence_bbse")


def test_label_shift_table_shows_its_main_columns_and_a_short_disagreement(workspace: Path) -> None:
    code, out, err = _run(workspace, "label-shift", "--segment", "*", "--class", "critical", columns=100)
    assert code == 0, err
    lines = out.splitlines()
    header = " ".join(lines[:3])
    assert all(name in header for name in ("end", "class", "slice", "bbse", "cbpe", "disagree"))
    assert "segment_value" not in header and "model" not in header and "warning" not in header
    rows = [line for line in lines if line.startswith("2024-")]
    # the whole warning cut at 100 columns read "the prevalence …": the table says yes instead
    code, out, _ = _run(workspace, "label-shift", "--segment", "*", "--class", "critical", "--format", "json")
    warned = [r["label_shift_warning"] is not None for r in json.loads(out)]
    assert len(rows) == len(warned) == 14 and sum(warned) >= 5
    assert [row.split()[-1] == "yes" for row in rows] == warned
    assert max(len(line) for line in lines) <= 100
    code, out, _ = _run(workspace, "label-shift", "--segment", "*", "--class", "critical", "--wide", columns=400)
    assert code == 0 and "the prevalence of 'critical'" in out  # --wide shows the whole warning


def test_metrics_table_leads_with_the_best_current_recall_when_scores_are_logged(workspace: Path) -> None:
    code, out, err = _run(workspace, "metrics", "--segment", "*", "--class", "critical", columns=250)
    assert code == 0, err
    assert out.splitlines()[0].split() == ["end", "class", "slice", "recall_best", "recall_best_low",
                                           "recall_best_high", "recall", "recall_estimated", "support",
                                           "provisional", "recall_low", "recall_high", "precision"]
    code, out, _ = _run(workspace, "metrics", "--segment", "*", columns=80)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    caption = " ".join(out.split())  # a narrow terminal loses the realized interval and precision first
    assert "not shown:" in caption and "precision" in caption.split("not shown:")[1]
    assert "recall_best" not in caption.split("not shown:")[1]
    code, out, _ = _run(workspace, "metrics", "--segment", "*", "--format", "json")  # json keeps the contract's order
    assert list(json.loads(out)[0])[-8:] == ["recall_best", "recall_best_low", "recall_best_high", "calibration",
                                            "calibration_id", "calibration_fit_start", "calibration_fit_end",
                                            "calibration_labels"]
