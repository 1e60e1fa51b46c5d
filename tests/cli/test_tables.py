"""`--format table` fits the terminal: default columns per record, `--columns`, `--wide`,
text cut with an ellipsis; json and csv keep every field (docs/contract.md §3)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.output import OutputFormat, emit, fit_widths, format_cell, table_columns, with_slice
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.core.workspace import make_workspace, small_scenario

ALERT = {"id": 12, "model": "triage", "rule": "minority-recall", "metric": "recall", "class": "critical",
         "segment": "region", "segment_value": "south", "state": "firing",
         "started_at": "2026-11-28T00:00:00Z", "value": 0.0, "reference_value": 0.6722, "support": 34,
         "message": "Recall of class 'critical' region=south is 0.00 (95% CI 0.00-0.10), 0.67 below "
                    "the reference 0.67, on 34 labelled positives; 7d window ending 2026-12-02T00:00:00Z.",
         "severity": "critical", "fingerprint": "4ffb8bada003ca39a7c70fd3e05cf244", "p_value": 7.6e-13}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("tables")  # one workspace for the module: reads only
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = make_engine(url)
    upgrade(engine)
    config, _ = make_workspace(tmp_path, url, small_scenario(days=4))
    run_tick(engine, config, notify=False, as_of=parse_time("2024-03-06T00:00:00Z"))
    engine.dispose()
    return tmp_path / "monitor.toml"


def _run(config: Path, *args: str, columns: int = 80) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env={"COLUMNS": str(columns)})
    return result.exit_code, result.stdout, result.stderr


def test_a_metrics_table_fits_the_terminal_with_its_main_columns(workspace: Path) -> None:
    code, out, err = _run(workspace, "metrics", "--window", "1d", columns=80)
    assert code == 0, err
    lines = out.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    header = " ".join(lines[:3])
    assert "recall" in header and "slice" in header and "n_predictions" not in header
    assert "sex=M" in out  # segment=value in one column


def test_wide_shows_every_column_and_columns_chooses_them(workspace: Path) -> None:
    code, out, _ = _run(workspace, "metrics", "--window", "1d", "--wide")
    assert code == 0 and "n_predictions" in out and "estimation_warning" in out
    code, out, _ = _run(workspace, "metrics", "--window", "1d", "--columns", "end,class,recall")
    assert code == 0
    assert out.split()[:3] == ["end", "class", "recall"]
    code, out, err = _run(workspace, "metrics", "--columns", "end,recal")
    assert code == 2 and "recal" in err and "recall_low" in err  # names the known columns


def test_json_and_csv_keep_every_field_whatever_the_table_options(workspace: Path) -> None:
    from monitor.metrics.service import EXTRA_COLUMNS, METRIC_COLUMNS

    code, out, _ = _run(workspace, "metrics", "--window", "1d", "--format", "json", "--columns", "end")
    assert code == 0 and list(json.loads(out)[0]) == METRIC_COLUMNS + EXTRA_COLUMNS
    code, out, _ = _run(workspace, "metrics", "--window", "1d", "--format", "csv")
    assert out.splitlines()[0].split(",") == METRIC_COLUMNS + EXTRA_COLUMNS


def test_a_long_message_is_cut_with_an_ellipsis_and_the_row_stays_one_line(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("COLUMNS", "100")
    emit(pd.DataFrame([ALERT]), OutputFormat("table"), stream=stream, view="alerts")
    lines = stream.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    [row] = [line for line in lines if line.startswith("12 ")]
    assert "firing" in row and "region=south" in row and "Recall of" in row and row.rstrip().endswith("…")
    assert "2026-11-28" in row and "T00:00:00Z" not in row  # midnight times print as dates


def test_cells_ids_and_widths() -> None:
    assert format_cell(12.0) == "12" and format_cell(0.67222) == "0.672" and format_cell(None) == "-"
    assert format_cell("2026-11-28T06:30:00Z") == "2026-11-28 06:30"
    assert format_cell(7.6e-13) == "7.6e-13"
    widths = fit_widths(["id", "message"], [["1", "x" * 300]], 40)
    assert sum(widths) <= 40 and widths[0] == 2  # the free text gives way first
    frame = with_slice(pd.DataFrame([ALERT, {**ALERT, "id": 13, "model": "other"}]))
    assert table_columns(frame, "alerts")[:2] == ["model", "id"]  # several models: model shown
    assert "slice" not in table_columns(frame, "alerts", wide=True)


def test_a_narrow_terminal_loses_the_last_columns_with_a_caption_not_cut_numbers(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("COLUMNS", "60")
    emit(pd.DataFrame([ALERT]), OutputFormat("table"), stream=stream, view="alerts")
    text = stream.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "0.672" in text and "not shown:" in text and "--wide" in text
    stream = io.StringIO()  # columns asked for by name are all shown, cut if they must be
    emit(pd.DataFrame([ALERT]), OutputFormat("table", ["id", "message", "fingerprint"]), stream=stream,
         view="alerts")
    assert "not shown" not in stream.getvalue() and "fingerprint" in stream.getvalue()


def test_monitor_files_prints_the_ledger_with_file_names_kept(workspace: Path) -> None:
    from monitor.ingest.report import FILE_COLUMNS

    code, out, _ = _run(workspace, "files", "--format", "json")
    records = json.loads(out)
    assert code == 0 and records and list(records[0]) == FILE_COLUMNS
    code, out, _ = _run(workspace, "files", columns=70)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 70
    assert ".csv" in out  # a long path is cut on the left: the file's name stays
