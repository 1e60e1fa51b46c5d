"""Load test of the HTTP API: gunicorn (4 workers) on PostgreSQL, 50 concurrent clients, 30 s.

    python bench/api_load.py [--clients 50] [--duration 30] [--workers 4] [--threads 4] [--batch 50]
                             [--admin-url postgresql://postgres@127.0.0.1:5432/test]

Everything runs on 127.0.0.1 and stops by itself: a fresh database is created on the server
of --admin-url (default $MONITOR_TEST_POSTGRES_URL) and dropped at the end; gunicorn serves
`monitor.api.wsgi:app` (or the dashboard's `dashboards.wsgi:server` with --app dashboard) on
a free port with MONITOR_API_TOKEN set. Each client loops until the deadline over: POST a
batch of new predictions, POST their labels, re-POST an earlier batch (must be skipped, not
doubled), and GETs of /api/v1/models/<m>/metrics, /api/v1/models, /api/v1/alerts, /metrics
and /healthz. It prints throughput, p50/p95/p99 latency per request kind and errors, then
counts rows in the database: predictions and labels must equal what the API accepted, and
the aggregate counts must equal the rows (no lost or doubled records). Exit code 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import requests
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.store.db import make_engine  # noqa: E402
from monitor.store.migrate import upgrade  # noqa: E402
from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount  # noqa: E402

CLASSES = ["routine", "urgent", "critical"]
REGIONS = ["north", "south", "east", "west"]
START = 1_704_067_200  # 2024-01-01
TOKEN = "bench-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_batch(client: int, seq: int, size: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    predictions, labels = [], []
    for i in range(size):
        pid = f"c{client}-{seq}-{i}"
        truth = rng.choices(CLASSES, weights=[0.8, 0.17, 0.03])[0]
        predicted = truth if rng.random() < 0.8 else rng.choice(CLASSES)
        ts = START + rng.randrange(0, 5 * 86400)
        predictions.append({"prediction_id": pid, "timestamp": ts, "prediction": predicted,
                            "region": rng.choice(REGIONS), **{f"score_{c}": (0.9 if c == predicted else 0.05) for c in CLASSES}})
        labels.append({"prediction_id": pid, "label": truth, "label_timestamp": ts + 3600})
    return predictions, labels


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.accepted = {"predictions": 0, "labels": 0}
        self.skipped = 0
        self.resent = 0

    def record(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{kind}: {detail[:200]}")


def client_loop(client: int, base: str, deadline: float, batch: int, stats: Stats) -> None:
    rng = random.Random(client)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    sent: list[list[dict]] = []
    seq = 0

    def call(kind: str, method: str, url: str, **kwargs) -> dict | list | None:
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=300, **kwargs)  # queueing is latency, not loss
            ok = response.status_code == 200
            stats.record(kind, time.perf_counter() - started, ok, f"{response.status_code} {response.text}")
            return response.json() if ok and "json" in response.headers.get("Content-Type", "") else None
        except requests.RequestException as error:
            stats.record(kind, time.perf_counter() - started, False, repr(error))
            return None

    while time.monotonic() < deadline:
        predictions, labels = make_batch(client, seq, batch, rng)
        seq += 1
        answer = call("POST predictions", "POST", f"{base}/api/v1/models/triage/predictions", json=predictions, headers=auth)
        if answer is not None:
            with stats.lock:
                stats.accepted["predictions"] += answer["accepted"]
            sent.append(predictions)
        ndjson = "\n".join(json.dumps(label) for label in labels)
        answer = call("POST labels", "POST", f"{base}/api/v1/models/triage/labels", data=ndjson,
                      headers={**auth, "Content-Type": "application/x-ndjson"})
        if answer is not None:
            with stats.lock:
                stats.accepted["labels"] += answer["accepted"]
        if seq % 2 == 0 and sent:  # a client retrying an old batch: must be skipped
            answer = call("POST resend", "POST", f"{base}/api/v1/models/triage/predictions",
                          json=rng.choice(sent), headers=auth)
            if answer is not None:
                with stats.lock:
                    stats.resent += batch
                    stats.skipped += answer["skipped"]
                    stats.accepted["predictions"] += answer["accepted"]
        read = rng.choice(["metrics", "models", "alerts", "prometheus", "healthz"])
        url = {"metrics": f"{base}/api/v1/models/triage/metrics?window=7d&step=1d&segment=*",
               "models": f"{base}/api/v1/models", "alerts": f"{base}/api/v1/alerts?model=triage",
               "prometheus": f"{base}/metrics", "healthz": f"{base}/healthz"}[read]
        call(f"GET {read}", "GET", url)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (as docker/)")
    parser.add_argument("--batch", type=int, default=50, help="records per POST")
    parser.add_argument("--app", choices=["api", "dashboard"], default="api")
    parser.add_argument("--admin-url", default=os.environ.get("MONITOR_TEST_POSTGRES_URL",
                                                               "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()

    admin_url = args.admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"monitor_load_{uuid.uuid4().hex[:8]}"
    database_url = f"{args.admin_url.rpartition('/')[0]}/{name}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    workdir = Path(tempfile.mkdtemp(prefix="monitor-load-"))
    server = None
    try:
        engine = make_engine(database_url)
        upgrade(engine)
        config = workdir / "monitor.toml"
        config.write_text(
            f'database_url = "{database_url}"\n[[models]]\nname = "triage"\n'
            f"classes = {json.dumps(CLASSES)}\nminority_classes = [\"critical\"]\nsegments = [\"region\"]\n",
            encoding="utf-8")
        port = free_port()
        target = "monitor.api.wsgi:app" if args.app == "api" else "dashboards.wsgi:server"
        env = {**os.environ, "MONITOR_CONFIG": str(config), "MONITOR_API_TOKEN": TOKEN,
               "PYTHONPATH": str(ROOT)}
        env.pop("MONITOR_BASIC_AUTH", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "--threads", str(args.threads),
             "-b", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning", target],
            env=env, cwd=workdir)
        base = f"http://127.0.0.1:{port}"
        ready_by = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > ready_by or server.poll() is not None:
                print("gunicorn did not become healthy", file=sys.stderr)
                return 1
            time.sleep(0.2)

        # warm-up (not measured): every worker reads once, so first-request costs stay out
        warm = [threading.Thread(target=requests.get, args=(f"{base}/api/v1/models/triage/metrics",),
                                 kwargs={"timeout": 60}) for _ in range(args.workers * 2)]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()

        stats = Stats()
        started = time.monotonic()
        deadline = started + args.duration
        threads = [threading.Thread(target=client_loop, args=(c, base, deadline, args.batch, stats), daemon=True)
                   for c in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.duration + 120)
        elapsed = time.monotonic() - started

        with engine.connect() as conn:
            stored = {
                "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
                "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
                "prediction_counts": conn.execute(select(func.coalesce(func.sum(PredictionCount.n), 0))).scalar_one(),
                "confusion_counts": conn.execute(select(func.coalesce(func.sum(ConfusionCount.n), 0))).scalar_one(),
            }
        engine.dispose()

        total = sum(len(v) for v in stats.latency.values())
        print(f"gunicorn {args.workers} workers x {args.threads} threads ({target}) on PostgreSQL, "
              f"{args.clients} clients, {elapsed:.1f} s, {args.batch} records per POST")
        print(f"{'request':<20}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for kind in sorted(stats.latency):
            values = stats.latency[kind]
            print(f"{kind:<20}{len(values):>8}{len(values) / elapsed:>9.1f}{percentile(values, 50):>9.1f}"
                  f"{percentile(values, 95):>9.1f}{percentile(values, 99):>9.1f}{stats.errors.get(kind, 0):>8}")
        all_values = [v for values in stats.latency.values() for v in values]
        errors = sum(stats.errors.values())
        print(f"{'all':<20}{total:>8}{total / elapsed:>9.1f}{percentile(all_values, 50):>9.1f}"
              f"{percentile(all_values, 95):>9.1f}{percentile(all_values, 99):>9.1f}{errors:>8}")
        print(f"records accepted: {stats.accepted['predictions']} predictions "
              f"({stats.accepted['predictions'] / elapsed:.0f}/s), {stats.accepted['labels']} labels; "
              f"re-sent {stats.resent}, skipped {stats.skipped}")
        print("stored: " + ", ".join(f"{k} {v}" for k, v in stored.items()))
        checks = {
            "no errors": errors == 0,
            "predictions stored == accepted": stored["predictions"] == stats.accepted["predictions"],
            "labels stored == accepted": stored["labels"] == stats.accepted["labels"],
            "prediction_counts == predictions": stored["prediction_counts"] == stored["predictions"],
            "confusion_counts == labels": stored["confusion_counts"] == stored["labels"],
            "every re-sent record skipped": stats.skipped == stats.resent,
        }
        for label, ok in checks.items():
            print(f"  [{'ok' if ok else 'FAIL'}] {label}")
        for sample in stats.error_samples:
            print(f"  error: {sample}")
        return 0 if all(checks.values()) else 1
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
