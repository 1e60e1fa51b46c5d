"""`monitor consume` and `[models.stream]` when something is wrong: one clear line, exit 1
(2 for the configuration), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import ConfigError, parse_config
from tests.stream.conftest import StreamNames, publish, write_config


def test_stream_config_errors_name_the_section() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"models": [{"name": "triage", "stream": {
            "batch_size": 0, "predictions_subject": "has space", "durable": "a.b", "max_wait": "soon", "urll": "x"}}]})
    message = str(error.value)
    for expected in ('[[models]] name="triage": stream.batch_size', '[[models]] name="triage": stream.predictions_subject',
                     '[[models]] name="triage": stream.durable', '[[models]] name="triage": stream.max_wait',
                     "unknown key 'stream.urll' (did you mean 'stream.url'?)"):
        assert expected in message, message


def test_stream_defaults_follow_the_model_name() -> None:
    config = parse_config({"models": [{"name": "triage", "stream": {}}, {"name": "other"}]})
    stream = config.models[0].stream
    assert stream is not None and config.models[1].stream is None
    assert stream.subjects("triage") == ("monitor.triage.predictions", "monitor.triage.labels")
    assert stream.stream_name("triage") == "MONITOR_triage"
    assert (stream.url, stream.durable, stream.max_wait) == ("nats://127.0.0.1:4222", "monitor", 1.0)


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "consume", *args])
    return result.exit_code, result.output


def test_a_model_without_a_stream_table_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{sqlite_url}"\n[[models]]\nname = "plain"\n', encoding="utf-8")
    code, output = _run(config)
    assert code == 1 and "has no [models.stream] table" in output, output


def test_an_unreachable_server_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    names = StreamNames("nats://127.0.0.1:1", "T_none", "t.none.predictions", "t.none.labels", "t.none.dead")
    code, output = _run(write_config(tmp_path, sqlite_url, names), "--until-idle", "1")
    assert code == 1 and "cannot reach NATS at nats://127.0.0.1:1" in output, output
    assert "Traceback" not in output


def test_a_stream_holding_other_subjects_is_refused(names: StreamNames, tmp_path: Path, sqlite_url: str) -> None:
    publish(names, [])
    other = StreamNames(names.url, names.stream, names.predictions, names.labels + "x", names.dead_letters)
    code, output = _run(write_config(tmp_path, sqlite_url, other), "--until-idle", "1")
    assert code == 1 and f"stream {names.stream} holds subjects" in output and "a stream of its own" in output, output
