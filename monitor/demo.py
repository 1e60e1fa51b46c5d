"""`monitor demo`: a working monitor on a fresh machine in one command.

It simulates a triage model (a rare `critical` class) with a fault injected ten days before
"now" — the `critical` recall of region `south` collapses and `num_0` drifts — writes the
logs, a monitor.toml and a SQLite database into the demo folder, ingests the history, and
then runs two processes, the scheduler (`monitor run`) and the dashboard (`monitor serve`),
while a feeder thread in this process drops new prediction and label files into the log
folders every few seconds: the first minutes replay the last 12 hours quickly, after that
data arrives in real time. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.config import load_config
from monitor.simulate import Fault, Scenario, simulate, write_config
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.timeutil import now_epoch

log = logging.getLogger(__name__)
FEED_EVERY = 5.0  # seconds between new files
CATCH_UP = 15 * 60  # simulated seconds released per feed while replaying the last hours
LIVE_GAP = 12 * 3600  # the history ends this long before now; the rest is fed live
# A label backlog: the labels given in the last BACKLOG before the history's end reach the demo
# only BACKLOG_RELEASE after it starts. Until then the newest windows hold fewer labels than
# windows of their age usually do, so they show as provisional, then turn mature.
BACKLOG = 2 * 86400
BACKLOG_RELEASE = 20 * 60
SERVER_LOG = "server.log"  # the dashboard's output (its access log), beside demo.db


def demo_scenario(days: int, now: int) -> Scenario:
    start = datetime.fromtimestamp(now, tz=timezone.utc).date() - timedelta(days=days)
    return Scenario(
        start=start.isoformat(), days=days + 2, rows_per_day=3000, n_regions=4,
        label_delay_median_hours=12.0,
        faults=[Fault(start_day=max(days - 10, 1), segment="region", value="south", cls="critical",
                      kind="concept", recall_factor=0.1, drift_feature="num_0", shift=1.0)],
    )


def prepare(directory: Path, *, days: int, port: int, now: int | None = None) -> Path:
    """Write the demo workspace (logs up to now - 12h, pending rows, config, database)."""
    now = now if now is not None else now_epoch()
    directory.mkdir(parents=True, exist_ok=True)
    scenario = demo_scenario(days, now)
    data = simulate(scenario, seed=2024)
    predictions, labels = data.predictions, data.labels
    released_until = now - LIVE_GAP
    pending = directory / ".pending"
    pending.mkdir(exist_ok=True)
    for sub in ("predictions", "labels"):
        (directory / sub).mkdir(exist_ok=True)
    early = data.prediction_epoch <= released_until
    predictions.loc[early].to_csv(directory / "predictions" / "history.csv", index=False)
    predictions.loc[~early].assign(_epoch=data.prediction_epoch[~early]).to_parquet(pending / "predictions.parquet")
    held = (data.label_epoch > released_until - BACKLOG) & (data.label_epoch <= released_until)
    early_labels = (data.label_epoch <= released_until) & ~held
    release = np.where(held, now + BACKLOG_RELEASE, data.label_epoch)
    labels.loc[early_labels].to_csv(directory / "labels" / "history.csv", index=False)
    labels.loc[~early_labels].assign(_epoch=release[~early_labels]).to_parquet(pending / "labels.parquet")
    data.reference.to_parquet(directory / "reference.parquet", index=False)
    (pending / "clock").write_text(str(released_until))
    path = write_config(
        directory, scenario, database_url="sqlite:///demo.db",
        extra={"dashboard_url": f"http://127.0.0.1:{port}",
               "channels": [{"type": "log", "path": "alerts.log"}],
               "scheduler": {"interval": "10s", "notify_interval": "5s"}},
    )
    engine = make_engine(load_config(path).database_url)
    upgrade(engine)
    engine.dispose()
    return path


def feed_once(directory: Path, now: int | None = None) -> tuple[int, int]:
    """Release the next slice of pending rows as new files; returns (predictions, labels)."""
    pending = directory / ".pending"
    clock_file = pending / "clock"
    released = int(clock_file.read_text())
    now = now if now is not None else now_epoch()
    target = min(now, released + CATCH_UP) if released + CATCH_UP < now else now
    counts = []
    for kind in ("predictions", "labels"):
        frame = pd.read_parquet(pending / f"{kind}.parquet")
        due = (frame["_epoch"] > released) & (frame["_epoch"] <= target)
        if due.any():
            name = f"live-{target}.csv"
            frame.loc[due].drop(columns=["_epoch"]).to_csv(directory / kind / (name + ".part"), index=False)
            os.replace(directory / kind / (name + ".part"), directory / kind / name)  # atomic: never half read
        counts.append(int(due.sum()))
    clock_file.write_text(str(target))
    return counts[0], counts[1]


def _feeder(directory: Path, stop: threading.Event) -> None:
    while not stop.wait(FEED_EVERY):
        try:
            feed_once(directory)
        except Exception:  # noqa: BLE001 - the demo goes on without a feed
            log.exception("demo feeder failed")


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> bool:
    """Whether `url` answers before `timeout` seconds (False at once when `process` ends)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local server
                return True
        except urllib.error.HTTPError:
            return True  # it answers, even if not with 200
        except OSError:
            time.sleep(0.5)
    return False


def run_demo(directory: Path, *, port: int = 8050, days: int = 60, serve: bool = True) -> None:
    """Prepare the workspace, ingest the history, then run scheduler + dashboard until Ctrl-C."""
    from rich.console import Console

    console = Console(stderr=True)
    directory = directory.resolve()
    with console.status(f"simulating {days} days of predictions and labels in {directory} ..."):
        config_path = prepare(directory, days=days, port=port)
    from monitor.tick import run_tick

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    console.print("ingesting the history (first run only takes a little while) ...")
    summary = run_tick(engine, config, progress=sys.stderr.isatty())
    run_tick(engine, config)  # a second evaluation: alerts need two in a row to fire
    engine.dispose()
    console.print(summary.render())
    if not serve:
        return
    base = [sys.executable, "-m", "monitor.cli", "--config", str(config_path)]
    server_log = directory / SERVER_LOG  # the access log would drown the console
    with server_log.open("ab") as log_file:
        processes = [
            subprocess.Popen([*base, "run"]),
            subprocess.Popen([*base, "serve", "--host", "127.0.0.1", "--port", str(port)],
                             stdout=log_file, stderr=subprocess.STDOUT),
        ]
    stop = threading.Event()

    def _terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the demo like Ctrl-C: children too

    signal.signal(signal.SIGTERM, _terminate)
    feeder = threading.Thread(target=_feeder, args=(directory, stop), daemon=True)
    feeder.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        with console.status(f"starting the dashboard on port {port} ..."):
            ready = wait_until_serving(url, processes[1])
        if ready:
            print(f"\nclassifier-monitor demo: open {url}  (Ctrl-C to stop)", flush=True)
        else:
            console.print(f"the dashboard did not answer at {url}: see {server_log} "
                          "(another program on that port? try --port)")
        print(f"workspace: {directory} (config {config_path}; web server log {server_log})", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
