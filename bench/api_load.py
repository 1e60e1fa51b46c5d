"""Load test of the HTTP API: gunicorn (4 workers) on PostgreSQL, 50 concurrent clients.

    python bench/api_load.py [--clients 50] [--duration 60] [--workers 4] [--threads 4] [--batch 50]
                             [--rate 0] [--reads readers|per-write] [--scrape 5] [--poll 0.5]
                             [--modes inbox,direct] [--admin-url postgresql://postgres@127.0.0.1:5432/test]

Runs each mode for --duration seconds, in one run, side by side: `inbox` (the default write: a
POST validates, queues its rows in the inbox and answers; drainer threads aggregate them in
micro-batches) and `direct`, the baseline (every POST with `?wait=true`: aggregated inside the
request under the model's lock, as every write was before the inbox).

Everything runs on 127.0.0.1 and stops by itself: per mode a fresh database is created on the
server of --admin-url (default $MONITOR_TEST_POSTGRES_URL) and dropped at the end; gunicorn
serves `monitor.api.wsgi:app` (or `dashboards.wsgi:server` with --app dashboard) on a free
port with MONITOR_API_TOKEN set, and `monitor run` beside it, as deployed (--no-scheduler: the
API workers drain the inbox alone). Each client loops until the deadline over: POST a batch of
new predictions, POST their labels, re-POST an earlier batch (must not be doubled) (clients
are threads spread over --client-procs processes). Reads: by default (`--reads readers`) as
deployed, a Prometheus scrape of /metrics every 5 s and a reader (a dashboard, a script) GETting
metrics, models and alerts in turn every 0.5 s; `--reads per-write` makes every client also GET
one of them after each write cycle (about a third of all requests, each a full metrics
computation: the read-heavy case). A probe process GETs /healthz every 100 ms, as a load balancer would, and another
polls the inbox to time each queued POST from its rows received to their aggregation. It prints p50/p95/p99 latency per request kind, records/s and
the accepted-to-aggregated times, then counts rows in the database once the inbox is drained:
predictions and labels must equal the new records accepted, the aggregate counts must equal
the rows, no reject (no re-sent record doubled or refused). Exit code 1 if not.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
        self.new = {"predictions": 0, "labels": 0}  # records sent for the first time, answered 200
        self.skipped = 0
        self.resent = 0
        self.aggregated: list[float] = []  # seconds from a POST's rows queued to aggregated

    def export(self) -> dict:
        return {"latency": dict(self.latency), "errors": dict(self.errors), "error_samples": self.error_samples,
                "new": self.new, "skipped": self.skipped, "resent": self.resent, "aggregated": self.aggregated}

    def merge(self, part: dict) -> None:
        for kind, values in part["latency"].items():
            self.latency[kind].extend(values)
        for kind, count in part["errors"].items():
            self.errors[kind] += count
        self.error_samples.extend(part["error_samples"][:10 - len(self.error_samples)])
        for kind in self.new:
            self.new[kind] += part["new"][kind]
        self.skipped += part["skipped"]
        self.resent += part["resent"]
        self.aggregated.extend(part["aggregated"])

    def record(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{kind}: {detail[:200]}")


def client_loop(client: int, base: str, deadline: float, batch: int, stats: Stats, wait: bool, reads: bool,
                every: float = 0.0) -> None:
    """One client: write cycles back to back, or (`every` > 0) one cycle starting every
    `every` seconds (a fixed offered rate; a late cycle starts at once, without catching up)."""
    rng = random.Random(client)
    next_start = time.monotonic() + rng.uniform(0, every)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    params = {"wait": "true"} if wait else {}
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
        if every:
            time.sleep(max(0.0, next_start - time.monotonic()))
            next_start = max(next_start + every, time.monotonic())
            if time.monotonic() >= deadline:
                break
        predictions, labels = make_batch(client, seq, batch, rng)
        seq += 1
        answer = call("POST predictions", "POST", f"{base}/api/v1/models/triage/predictions", json=predictions,
                      headers=auth, params=params)
        if answer is not None:
            with stats.lock:
                stats.new["predictions"] += answer["accepted"]
            sent.append(predictions)
        ndjson = "\n".join(json.dumps(label) for label in labels)
        answer = call("POST labels", "POST", f"{base}/api/v1/models/triage/labels", data=ndjson, params=params,
                      headers={**auth, "Content-Type": "application/x-ndjson"})
        if answer is not None:
            with stats.lock:
                stats.new["labels"] += answer["accepted"]
        if seq % 2 == 0 and sent:  # a client retrying an old batch: must not be doubled
            answer = call("POST resend", "POST", f"{base}/api/v1/models/triage/predictions",
                          json=rng.choice(sent), headers=auth, params=params)
            if answer is not None:
                with stats.lock:
                    stats.resent += batch
                    stats.skipped += answer["skipped"]
        if reads:  # --reads per-write: every client reads after each write cycle
            read = rng.choice(list(READS))
            call(f"GET {read}", "GET", base + READS[read])


READS = {"metrics": "/api/v1/models/triage/metrics?window=7d&step=1d&segment=*", "models": "/api/v1/models",
         "alerts": "/api/v1/alerts?model=triage", "prometheus": "/metrics"}


def reader_process(base: str, deadline: float, scrape: float, poll: float, results: multiprocessing.Queue) -> None:
    """The readers of a deployment (--reads readers): Prometheus scraping /metrics every
    `scrape` seconds, and a dashboard or script reading metrics, models and alerts in turn
    every `poll` seconds; each in its own thread of this process."""
    stats = Stats()

    def loop(kinds: list[str], every: float) -> None:
        session = requests.Session()
        turn = 0
        while time.monotonic() < deadline:
            kind = kinds[turn % len(kinds)]
            turn += 1
            started = time.perf_counter()
            try:
                response = session.get(base + READS[kind], timeout=300)
                stats.record(f"GET {kind}", time.perf_counter() - started, response.status_code == 200,
                             f"{response.status_code} {response.text[:200]}")
            except requests.RequestException as error:
                stats.record(f"GET {kind}", time.perf_counter() - started, False, repr(error))
            time.sleep(max(0.0, every - (time.perf_counter() - started)))

    threads = [threading.Thread(target=loop, args=(["prometheus"], scrape)),
               threading.Thread(target=loop, args=(["metrics", "models", "alerts"], poll))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(stats.export())


def client_process(first: int, count: int, base: str, deadline: float, batch: int, wait: bool, reads: bool,
                   every: float, results: multiprocessing.Queue) -> None:
    """`count` clients as threads of one process (load generators in several processes, so
    that the clients' own GIL does not become the latency measured)."""
    stats = Stats()
    threads = [threading.Thread(target=client_loop, args=(c, base, deadline, batch, stats, wait, reads, every))
               for c in range(first, first + count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(stats.export())


def health_probe(base: str, deadline: float, results: multiprocessing.Queue) -> None:
    """A load balancer's check, in its own process: GET /healthz every 100 ms."""
    stats = Stats()
    session = requests.Session()
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            ok = session.get(f"{base}/healthz", timeout=60).status_code == 200
        except requests.RequestException:
            ok = False
        stats.record("GET healthz", time.perf_counter() - started, ok, "healthz")
        time.sleep(0.1)
    results.put(stats.export())


def aggregation_probe(database_url: str, stop, results: multiprocessing.Queue) -> None:  # type: ignore[no-untyped-def]
    """In its own process, every 50 ms: the receive times of the POSTs whose rows are in the
    inbox; one that has left it was aggregated, that long after it was received (a POST queued
    and aggregated between two polls is not timed, so the figures lean high)."""
    from monitor.ingest.inbox import INBOX

    stats = Stats()
    engine = make_engine(database_url)
    seen: set[int] = set()
    with engine.connect() as conn:
        while True:
            current = set(conn.execute(select(INBOX.c.received_at).distinct()).scalars())
            conn.rollback()
            now = time.time()
            stats.aggregated.extend(now - received / 1e6 for received in seen - current)
            seen = current
            if stop.is_set() and not current:
                break
            time.sleep(0.05)
    engine.dispose()
    results.put(stats.export())


def cpu_snapshot(server: subprocess.Popen, scheduler: subprocess.Popen | None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each role: the gunicorn master and workers,
    `monitor run`, every PostgreSQL process of this machine, and the load generator (this
    process and its ended children: clients, health probe, reader). A PostgreSQL backend that
    exits during the run takes its CPU time with it, so that figure is a lower bound, and came
    out negative once when many connections closed in a collapsing run."""
    import psutil

    def seconds(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:  # ended between the listing and the reading
                continue
            total += times.user + times.system
        return total

    def tree(pid: int) -> float:
        try:
            root = psutil.Process(pid)
            return seconds([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            return 0.0

    postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]
    own = os.times()
    return {"gunicorn": tree(server.pid), "monitor run": tree(scheduler.pid) if scheduler else 0.0,
            "postgresql": seconds(postgres),
            "load generator": own.user + own.system + own.children_user + own.children_system}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


def run_mode(args: argparse.Namespace, mode: str) -> dict:
    """One load run against a fresh database and gunicorn; `mode` "inbox" (the default write)
    or "direct" (every POST with ?wait=true: aggregated inside the request, as before the inbox)."""
    admin_url = args.admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"monitor_load_{uuid.uuid4().hex[:8]}"
    database_url = f"{args.admin_url.rpartition('/')[0]}/{name}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    workdir = Path(tempfile.mkdtemp(prefix="monitor-load-"))
    server = scheduler = None
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
        if args.scheduler:  # as deployed: `monitor run` beside gunicorn; its thread drains the inbox
            scheduler = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run"], env=env, cwd=workdir,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        ready_by = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > ready_by or server.poll() is not None:
                raise RuntimeError("gunicorn did not become healthy")
            time.sleep(0.2)

        # warm-up (not measured): every worker reads once, so first-request costs stay out
        warm = [threading.Thread(target=requests.get, args=(f"{base}/api/v1/models/triage/metrics",),
                                 kwargs={"timeout": 60}) for _ in range(args.workers * 2)]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()

        stats = Stats()
        forked = multiprocessing.get_context("fork")
        results = forked.Queue()
        stop_probe = forked.Event()
        probe = forked.Process(target=aggregation_probe, args=(database_url, stop_probe, results))
        probe.start()
        cpu_before = cpu_snapshot(server, scheduler)
        started = time.monotonic()
        deadline = started + args.duration
        wait = mode == "direct"
        per = -(-args.clients // args.client_procs)
        workers = [forked.Process(target=client_process, args=(first, min(per, args.clients - first), base, deadline,
                                                                 args.batch, wait, args.reads == "per-write",
                                                                 args.clients * args.batch / args.rate if args.rate else 0.0,
                                                                 results))
                   for first in range(0, args.clients, per)]
        workers.append(forked.Process(target=health_probe, args=(base, deadline, results)))
        if args.reads == "readers":
            workers.append(forked.Process(target=reader_process, args=(base, deadline, args.scrape, args.poll, results)))
        for worker in workers:
            worker.start()
        for _ in workers:
            stats.merge(results.get(timeout=args.duration + 300))
        elapsed = time.monotonic() - started
        for worker in workers:
            worker.join(timeout=30)  # ended: their CPU time now counts in os.times()
        cpu_after = cpu_snapshot(server, scheduler)
        cpu = {role: (cpu_after[role] - cpu_before[role]) / elapsed for role in cpu_after}
        stop_probe.set()
        stats.merge(results.get(timeout=300))  # the probe ends once the inbox is drained
        for worker in [*workers, probe]:
            worker.join(timeout=30)

        from monitor.ingest.inbox import INBOX
        from monitor.store.models import RejectedRow

        with engine.connect() as conn:
            stored = {
                "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
                "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
                "prediction_counts": conn.execute(select(func.coalesce(func.sum(PredictionCount.n), 0))).scalar_one(),
                "confusion_counts": conn.execute(select(func.coalesce(func.sum(ConfusionCount.n), 0))).scalar_one(),
                "inbox": conn.execute(select(func.count()).select_from(INBOX)).scalar_one(),
                "rejects": conn.execute(select(func.count()).select_from(RejectedRow)).scalar_one(),
            }
        engine.dispose()
        return {"mode": mode, "stats": stats, "elapsed": elapsed, "stored": stored, "cpu": cpu}
    finally:
        if scheduler is not None and scheduler.poll() is None:
            scheduler.terminate()
            try:
                scheduler.wait(timeout=20)
            except subprocess.TimeoutExpired:
                scheduler.kill()
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(run: dict) -> tuple[dict[str, float], bool]:
    """Print one run's table and checks; return its headline figures and whether it passed."""
    stats, elapsed, stored, mode = run["stats"], run["elapsed"], run["stored"], run["mode"]
    print(f"\n== {mode} ({'POST answers after queueing' if mode == 'inbox' else 'POST ?wait=true: aggregated in the request'})")
    print(f"{'request':<20}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for kind in sorted(stats.latency):
        values = stats.latency[kind]
        print(f"{kind:<20}{len(values):>8}{len(values) / elapsed:>9.1f}{percentile(values, 50):>9.1f}"
              f"{percentile(values, 95):>9.1f}{percentile(values, 99):>9.1f}{stats.errors.get(kind, 0):>8}")
    posts = [v for kind, values in stats.latency.items() if kind.startswith("POST") for v in values]
    errors = sum(stats.errors.values())
    print(f"records: {stats.new['predictions']} new predictions ({stats.new['predictions'] / elapsed:.0f}/s), "
          f"{stats.new['labels']} labels ({stats.new['labels'] / elapsed:.0f}/s); re-sent {stats.resent}"
          + (f", answered as skipped {stats.skipped}" if mode == "direct" else ""))
    if stats.aggregated:
        print(f"accepted -> aggregated: p50 {percentile(stats.aggregated, 50):.0f} ms, "
              f"p99 {percentile(stats.aggregated, 99):.0f} ms, max {max(stats.aggregated) * 1000:.0f} ms "
              f"({len(stats.aggregated)} queued POSTs timed)")
    print("stored: " + ", ".join(f"{k} {v}" for k, v in stored.items()))
    cpu = run["cpu"]
    print(f"CPU in use (cores, average over the run; {os.cpu_count()} on this machine): "
          + ", ".join(f"{role} {cores:.2f}" for role, cores in cpu.items()) + f"; total {sum(cpu.values()):.2f}")
    checks = {
        "no errors": errors == 0,
        "predictions stored == new predictions accepted": stored["predictions"] == stats.new["predictions"],
        "labels stored == labels accepted": stored["labels"] == stats.new["labels"],
        "prediction_counts == predictions": stored["prediction_counts"] == stored["predictions"],
        "confusion_counts == labels": stored["confusion_counts"] == stored["labels"],
        "no re-sent record doubled or rejected": stored["rejects"] == 0,
        "inbox drained": stored["inbox"] == 0,
    }
    if mode == "direct":
        checks["every re-sent record answered as skipped"] = stats.skipped == stats.resent
    for label, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {label}")
    for sample in stats.error_samples:
        print(f"  error: {sample}")
    figures = {"post_p99": percentile(posts, 99), "healthz_p99": percentile(stats.latency["GET healthz"], 99),
               "predictions_s": stats.new["predictions"] / elapsed, "labels_s": stats.new["labels"] / elapsed,
               "aggregated_p99": percentile(stats.aggregated, 99) if stats.aggregated else float("nan")}
    return figures, all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds per mode (60: a backlog that aggregation cannot clear shows within"
                             " a minute; 15-20 s runs near the limit ended before it built up)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (as docker/)")
    parser.add_argument("--batch", type=int, default=50, help="records per POST")
    parser.add_argument("--app", choices=["api", "dashboard"], default="api")
    parser.add_argument("--no-scheduler", dest="scheduler", action="store_false",
                        help="no `monitor run` beside gunicorn (the API workers then drain the inbox alone)")
    parser.add_argument("--client-procs", type=int, default=5, help="processes the clients are spread over")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="predictions/s offered by all clients together (each paces its cycles); 0: as fast as answered")
    parser.add_argument("--reads", choices=["readers", "per-write"], default="readers",
                        help="readers: a Prometheus scrape every --scrape s and a reader every --poll s beside the "
                             "writing clients (a deployment); per-write: every client also reads after each write cycle")
    parser.add_argument("--scrape", type=float, default=5.0, help="seconds between /metrics scrapes (--reads readers)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between the reader's GETs (--reads readers)")
    parser.add_argument("--modes", default="inbox,direct", help="inbox, direct (the baseline) or both")
    parser.add_argument("--admin-url", default=os.environ.get("MONITOR_TEST_POSTGRES_URL",
                                                               "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(f"gunicorn {args.workers} workers x {args.threads} threads on PostgreSQL"
          f"{' + monitor run' if args.scheduler else ''}, {args.clients} clients, "
          f"{args.duration:.0f} s per mode, {args.batch} records per POST, "
          + (f"offered {args.rate:g} predictions/s (+ labels), " if args.rate else "clients as fast as answered, ")
          + "reads: "
          + (f"/metrics every {args.scrape:g} s, metrics/models/alerts every {args.poll:g} s" if args.reads == "readers"
             else "one GET per client write cycle") + " (figures are indicative: shared CPU)")
    results = {}
    passed = True
    for mode in modes:
        figures, ok = report(run_mode(args, mode))
        results[mode] = figures
        passed = passed and ok
    names = {"post_p99": "POST p99 ms", "healthz_p99": "healthz p99 ms", "predictions_s": "predictions/s",
             "labels_s": "labels/s", "aggregated_p99": "accepted->aggregated p99 ms"}
    print(f"\n{'':<30}" + "".join(f"{m:>12}" for m in modes) + ("        ratio" if len(modes) == 2 else ""))
    for key, label in names.items():
        values = [results[m][key] for m in modes]
        ratio = ""
        if len(values) == 2 and values[1] and values[1] == values[1] and values[0] == values[0]:
            ratio = f"{values[0] / values[1]:>12.2f}x"
        print(f"{label:<30}" + "".join(f"{v:>12.1f}" for v in values) + ratio)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
