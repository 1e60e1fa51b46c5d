"""Values from production data read back out: segment values, rejected rows and file names
holding terminal controls, quotes and line breaks.

A table on a terminal shows each such value, escaped, and never passes its escape sequences,
carriage returns, bells or bidirectional overrides to the terminal; json and csv stay exact
(every csv reader gets the records and values back); the CLI's own lines (the ingest summary,
log lines) escape the file names they quote.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import load_config
from monitor.store.db import make_engine
from tests.alerts.helpers import context, feed, make_config, observation
from tests.hostile.workspace import good_rows, jsonl_lines, tick, workspace

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b]8;;http://evil.example/\x1b\\docs\x1b]8;;\x1b\\",  # an OSC 8 hyperlink
    "\x1b[31mred",
    "ok\rFAKE",  # a carriage return: FAKE would overwrite the start of the row
    "x\b\b\by",
    "\x07bell",
    "\u202eevil",  # right-to-left override: the rest of the row reads backwards
    "line\u2028sep",
    "\x9b2J",  # the one-byte CSI of C1
    "two\nlines",
    'q"uote\\',
    "=HYPERLINK(\"http://evil.example\")",
    "[/]",
]
# what a terminal would act on; none of it may reach the table
CONTROLS = ["\x1b", "\r", "\b", "\x07", "\u202e", "\u2028", "\x9b"]


def _invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env={"COLUMNS": "250", **(env or {})})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


def _assert_inert(table: str) -> None:
    found = [control for control in CONTROLS if control in table]
    assert found == [], f"terminal controls in the table: {found!r}\n{table!r}"


@pytest.fixture
def hostile_workspace(tmp_path: Path, sqlite_url: str) -> Path:
    """Model `m` whose `group` segment takes every HOSTILE value (labelled), plus one rejected
    row and one failed file named with controls."""
    config = workspace(tmp_path, sqlite_url)
    rows = good_rows(len(HOSTILE) * 4)
    rows["group"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(rows))]
    bad = {**rows.iloc[0].to_dict(), "prediction_id": "bad\x1b[2J", "prediction": "\x1b]8;;http://e\x1b\\cls"}
    lines = [*jsonl_lines(rows), json.dumps(bad)]
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "predictions" / "broken\x1b[2J\r.jsonl.gz").write_bytes(b"not gzip")
    labels = pd.DataFrame({"prediction_id": rows["prediction_id"],
                           "label": ["pos" if i % 5 == 0 else "neg" for i in range(len(rows))]})
    labels.to_csv(tmp_path / "labels" / "l.csv", index=False)
    tick(config)
    return config


WINDOW = ["--window", "30d", "--step", "30d"]


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1"}], ids=["pipe", "terminal"])
def test_a_metrics_table_shows_hostile_segment_values_escaped_and_never_drives_the_terminal(
        hostile_workspace: Path, env: dict[str, str]) -> None:
    table = _invoke(hostile_workspace, "metrics", "--model", "m", *WINDOW, "--columns", "class,slice,n_predictions",
                    env=env)
    if not env:
        _assert_inert(table)
    else:  # rich styles its own header; none of the data's sequences may pass
        for sequence in ("\x1b[2J", "\x1b]8;;", "\x1b[31m", "\r", "\b", "\x07", "\u202e", "\u2028", "\x9b"):
            assert sequence not in table, (sequence, table)
    for shown in (r'"group=\x1b[2J\x1b[H"', r'"group=ok\rFAKE"', r'"group=x\x08\x08\x08y"', r'"group=\x07bell"',
                  r'"group=\u202eevil"', r'"group=line\u2028sep"', r'"group=\x9b2J"', r'"group=two\nlines"',
                  'group=q"uote\\ ', "group=[/]"):
        assert shown in table, (shown, table)


def test_json_and_csv_keep_hostile_values_exact_and_every_csv_reader_gets_the_records_back(
        hostile_workspace: Path) -> None:
    records = json.loads(_invoke(hostile_workspace, "metrics", "--model", "m", *WINDOW, "--format", "json"))
    values = [record["segment_value"] for record in records]
    assert set(HOSTILE) <= set(values)
    text = _invoke(hostile_workspace, "metrics", "--model", "m", *WINDOW, "--format", "csv")
    assert not text.split("\n", 1)[0].endswith("\r") and not text.endswith("\r\n")  # line ends stay "\n"
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [row["segment_value"] for row in rows] == values
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(frame["segment_value"]) == values
    assert list(frame.columns) == list(records[0])


@pytest.mark.parametrize("command", [
    ["fairness", "--model", "m", *WINDOW, "--wide"],
    ["rejects", "--model", "m", "--wide"],
    ["files", "--model", "m", "--wide"],
])
def test_every_table_of_hostile_data_is_inert(hostile_workspace: Path, command: list[str]) -> None:
    table = _invoke(hostile_workspace, *command)
    _assert_inert(table)
    assert r"\x1b[2J" in table, table


def test_the_ingest_summary_and_log_lines_escape_a_failed_file_name(tmp_path: Path, sqlite_url: str) -> None:
    config = workspace(tmp_path, sqlite_url)
    (tmp_path / "predictions" / "broken\x1b[2J\r.jsonl.gz").write_bytes(b"not gzip")
    done = subprocess.run([sys.executable, "-m", "monitor.cli", "--config", str(config), "ingest", "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for out in (done.stdout, done.stderr):  # the summary's "! file: error" line, the log's warning
        _assert_inert(out)
        assert r"broken\x1b[2J\r.jsonl.gz: cannot be parsed" in out, out


def test_an_alerts_table_on_a_hostile_segment_value_is_inert(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    ctx = context(engine, config)
    for day in (10, 11):
        feed(engine, config, ctx, [observation(day, 0, 40, segment="region", value=HOSTILE[0] + HOSTILE[3])])
    engine.dispose()
    path = tmp_path / "monitor.toml"
    path.write_text(f'database_url = "{sqlite_url}"\n[[models]]\nname = "triage"\n'
                    'classes = ["routine", "urgent", "critical"]\nminority_classes = ["critical"]\nsegments = ["region"]\n')
    assert load_config(path).models[0].name == "triage"
    records = json.loads(_invoke(path, "alerts", "--format", "json"))
    assert {record["segment_value"] for record in records} == {HOSTILE[0] + HOSTILE[3]}
    for command in (["alerts", "--wide"], ["alerts", "--series"]):
        table = _invoke(path, *command)
        _assert_inert(table)
        assert r"\x1b[2J\x1b[H" in table, table


COMMA_CLASS = "late, severe"


def test_a_class_named_with_a_comma_can_be_asked_for_by_the_cli_and_the_api(tmp_path: Path, sqlite_url: str) -> None:
    from monitor.api import create_api_app

    (tmp_path / "predictions").mkdir()
    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{sqlite_url}"\n[[models]]\nname = "m"\nclasses = ["ok", "{COMMA_CLASS}"]\n'
                      f'minority_classes = ["{COMMA_CLASS}"]\nsegments = ["group"]\n'
                      '[models.predictions]\npath = "predictions/*"\n')
    rows = good_rows(24).assign(prediction=lambda f: ["ok", COMMA_CLASS] * 12).drop(columns=["score_pos", "score_neg"])
    rows.to_csv(tmp_path / "predictions" / "p.csv", index=False)
    tick(config)
    records = json.loads(_invoke(config, "metrics", "--class", COMMA_CLASS, *WINDOW, "--format", "json"))
    assert {record["class"] for record in records} == {COMMA_CLASS}
    records = json.loads(_invoke(config, "fairness", "--class", f"ok,{COMMA_CLASS}", *WINDOW, "--format", "json"))
    assert {record["class"] for record in records} <= {"ok", COMMA_CLASS}
    client = create_api_app(load_config(config)).test_client()
    for query, expected in (({"class": COMMA_CLASS}, {COMMA_CLASS}), ({"class": ["ok", COMMA_CLASS]}, {"ok", COMMA_CLASS}),
                            ({"class": "ok"}, {"ok"})):
        answer = client.get("/api/v1/models/m/metrics", query_string={**query, "window": "30d", "step": "30d"})
        assert answer.status_code == 200, answer.json
        assert {record["class"] for record in answer.json} == expected, query
