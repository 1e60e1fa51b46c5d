"""A small workspace for hostile-input tests: good rows we know, bad rows we plant, and the
checks every such test makes (the good rows counted exactly, reads still work, memory bounded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from monitor.config import MonitorConfig, load_config
from monitor.context import load_context
from monitor.ingest.report import rejects_frame
from monitor.metrics.service import metrics_frame
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from tests.core.handmade import CONFIG

START = 1_704_067_200  # 2024-01-01T00:00:00Z
MEMORY_LIMIT = 1 << 30  # the reads run in a subprocess whose data segment is capped here


def workspace(tmp_path: Path, db_url: str, extra: str = "") -> Path:
    (tmp_path / "predictions").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    path = tmp_path / "monitor.toml"
    # the model of the hand-made ingest tests; `extra` (e.g. a [models.limits] table) belongs
    # to that model, being after its last table
    path.write_text(CONFIG.format(db_url=db_url) + "\n" + extra + "\n")
    return path


def good_rows(n: int = 40, prefix: str = "g") -> pd.DataFrame:
    """`n` valid predictions over two days of January 2024, two groups, both classes."""
    return pd.DataFrame({
        "prediction_id": [f"{prefix}{i}" for i in range(n)],
        "timestamp": [pd.Timestamp(START + 3600 * i, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
                      for i in range(n)],
        "prediction": ["pos" if i % 3 == 0 else "neg" for i in range(n)],
        "score_pos": [0.8 if i % 3 == 0 else 0.2 for i in range(n)],
        "score_neg": [0.2 if i % 3 == 0 else 0.8 for i in range(n)],
        "group": ["g1" if i % 2 else "g2" for i in range(n)],
        "x": [float(i % 7) for i in range(n)],
    })


HEADER = ",".join(good_rows(1).columns)  # the CSV header of `good_rows`
STRINGS = ["prediction_id", "prediction", "group"]  # its text columns, for readers' string_columns


def csv_lines(frame: pd.DataFrame) -> list[str]:
    """The data lines of `frame` as CSV (no header)."""
    return frame.to_csv(index=False).splitlines()[1:]


def jsonl_lines(frame: pd.DataFrame) -> list[str]:
    return [json.dumps(record) for record in frame.to_dict(orient="records")]


def tick(config_path: Path, **options: object):  # type: ignore[no-untyped-def]
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    try:
        return run_tick(engine, config, notify=False, **options)
    finally:
        engine.dispose()


def rejects(config_path: Path) -> pd.DataFrame:
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            return rejects_frame(conn, [m.name for m in config.models], limit=100_000)
    finally:
        engine.dispose()


def stored_counts(config: MonitorConfig) -> pd.DataFrame:
    """n_predictions per group over the whole data, from the monitor's own windows."""
    engine = make_engine(config.database_url)
    try:
        with engine.connect() as conn:
            ctx = load_context(conn, config.models[0])
            frame = metrics_frame(conn, ctx, WindowSpec(30 * 86400, 30 * 86400), segment="group")
    finally:
        engine.dispose()
    frame = frame[frame["class"] == "pos"]
    return frame.groupby("segment_value")["n_predictions"].sum()


def assert_counted_exactly(config_path: Path, good: pd.DataFrame) -> None:
    """The store holds exactly the good rows: per group, as pandas counts them."""
    expected = good.groupby("group").size()
    actual = stored_counts(load_config(config_path))
    pd.testing.assert_series_equal(actual.sort_index(), expected.sort_index(), check_names=False,
                                   check_dtype=False)


READS = [
    ["metrics", "--model", "m", "--format", "json"],
    ["metrics", "--model", "m", "--segment", "*", "--format", "json"],
    ["metrics", "--model", "m", "--window", "1d", "--step", "1h", "--format", "json"],
    ["drift", "--model", "m", "--format", "json"],
    ["fairness", "--model", "m", "--format", "json"],
    ["alerts", "--model", "m", "--state", "all", "--format", "json"],
    ["rejects", "--model", "m", "--format", "json"],
]

_LIMITED = """
import io, json, resource, sys
from contextlib import redirect_stdout
resource.setrlimit(resource.RLIMIT_DATA, ({limit}, {limit}))
from monitor.cli import main
config, commands = sys.argv[1], json.loads(sys.argv[2])
for args in commands:
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            main(["--config", config, *args], standalone_mode=False)
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    print(json.dumps({{"args": args, "code": code, "out": out.getvalue()}}))
"""


def assert_reads_work(config_path: Path, limit: int = MEMORY_LIMIT) -> None:
    """Every read command answers (exit 0, JSON) in one process whose memory is capped."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED.format(limit=limit), str(config_path), json.dumps(READS)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, f"reads under {limit >> 20} MiB: exit {done.returncode}: {done.stderr[-2000:]}"
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"args"')]
    assert len(answers) == len(READS), done.stdout[-2000:] + done.stderr[-2000:]
    for answer in answers:
        assert answer["code"] == 0, f"monitor {' '.join(answer['args'])}: exit {answer['code']}: {done.stderr[-2000:]}"
        json.loads(answer["out"] or "[]")
