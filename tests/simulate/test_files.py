"""Log files in every format are readable by pandas; the config loads with our parser."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import tomllib

from monitor.config import load_config
from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.simulate.files import dump_toml

READERS = {
    "csv": pd.read_csv,
    "jsonl": lambda path: pd.read_json(path, lines=True, dtype=False),
    "parquet": pd.read_parquet,
}


@pytest.fixture(scope="module")
def data():
    return simulate(Scenario(days=3, rows_per_day=400, missing_segment_fraction=0.1), seed=3)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("gzip", [False, True])
def test_every_format_reads_back_with_pandas(tmp_path, data, fmt, gzip):
    paths = write_logs(data, tmp_path, fmt=fmt, gzip=gzip)
    suffix = f".{fmt}" + (".gz" if gzip and fmt != "parquet" else "")
    assert all(p.name.endswith(suffix) for p in paths["predictions"] + paths["labels"])
    read = READERS[fmt]
    predictions = pd.concat([read(p) for p in paths["predictions"]], ignore_index=True)
    labels = pd.concat([read(p) for p in paths["labels"]], ignore_index=True)
    assert len(paths["predictions"]) == 3
    assert list(predictions["prediction_id"]) == list(data.predictions["prediction_id"])
    assert list(labels["prediction_id"]) == list(data.labels["prediction_id"])
    assert predictions["score_critical"].to_numpy() == pytest.approx(
        data.predictions["score_critical"].to_numpy()
    )
    assert predictions["region"].isna().sum() == data.predictions["region"].isna().sum() > 0
    reference = pd.read_parquet(paths["reference"])
    assert len(reference) == len(data.reference) and "label" in reference


def test_files_hold_one_day_each_and_labels_go_by_label_day(tmp_path, data):
    paths = write_logs(data, tmp_path, fmt="csv")
    for path in paths["predictions"]:
        day = path.stem.removeprefix("predictions_")
        assert pd.read_csv(path)["timestamp"].str.startswith(day).all()
    for path in paths["labels"]:
        day = path.stem.removeprefix("labels_")
        assert pd.read_csv(path)["label_timestamp"].str.startswith(day).all()


def test_files_per_day_splits_each_day(tmp_path, data):
    paths = write_logs(data, tmp_path, fmt="parquet", files_per_day=4)
    assert len(paths["predictions"]) == 12
    assert sum(len(pd.read_parquet(p)) for p in paths["predictions"]) == len(data.predictions)


def test_the_written_config_loads_and_names_the_files(tmp_path, data):
    write_logs(data, tmp_path, fmt="jsonl")
    path = write_config(
        tmp_path,
        data.scenario,
        database_url="sqlite:///sim.db",
        extra={"channels": [{"type": "log"}]},
        model_extra={"intersections": True},
    )
    config = load_config(path)
    model = config.model("triage")
    assert model.classes == ["routine", "urgent", "critical"]
    assert model.minority_classes == ["critical"]
    assert model.segments == ["sex", "age_band", "region"]
    assert model.features == data.scenario.features
    assert model.intersections is True
    assert model.alerts[0].metric == "recall" and model.alerts[0].classes == "minority"
    assert config.channels[0].type == "log"
    assert config.resolve(model.reference).exists()
    assert len(list(config.base_dir.glob(model.predictions.path))) == 3
    assert config.database_url == f"sqlite:///{(tmp_path / 'sim.db').resolve()}"


def test_the_toml_writer_round_trips():
    document = {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": 'quote " and \\ back',
        "e": ["x", "y"],
        "t": {"k": "v", "u": {"deep": 2}},
        "arr": [{"n": 1, "sub": {"m": 2}}, {"n": 2}],
    }
    assert tomllib.loads(dump_toml(document)) == document


def test_the_command_line_writes_logs_and_config(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.simulate",
            "--out",
            str(tmp_path),
            "--days",
            "2",
            "--rows-per-day",
            "200",
            "--seed",
            "4",
            "--format",
            "jsonl",
            "--gzip",
            "--fault",
            "start_day=1,segment=region,value=south,recall_factor=0.05",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "predictions").glob("*.jsonl.gz"))) == 2
    assert load_config(tmp_path / "monitor.toml").models[0].name == "triage"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.simulate",
            "--out",
            str(tmp_path),
            "--fault",
            "start_day=1,nope=2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr
