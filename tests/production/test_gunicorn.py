"""Several gunicorn workers of the real dashboard entry point (`dashboards.wsgi:server`)
share one PostgreSQL database: concurrent POSTs through different workers are all counted
once, basic auth guards the dashboard and /healthz stays open. Bounded: 8 clients x 4 rounds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from monitor.store.db import make_engine
from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount
from tests.api.conftest import make_records

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-test-token"
AUTH = ("admin", "s3cret")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_workers_share_the_database_and_count_every_record_once(postgres_url: str, tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{postgres_url}"\n[[models]]\nname = "m"\nclasses = ["ok", "rare"]\n'
                      'minority_classes = ["rare"]\nsegments = ["region"]\n', encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MONITOR_CONFIG": str(config), "MONITOR_API_TOKEN": TOKEN,
           "MONITOR_BASIC_AUTH": ":".join(AUTH)}
    env.pop("MONITOR_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}",
                               "--timeout", "120", "dashboards.wsgi:server"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.5)

        assert requests.get(f"{base}/", timeout=30).status_code == 401
        assert requests.get(f"{base}/", auth=AUTH, timeout=60).status_code == 200

        failures: list[str] = []
        accepted = {"predictions": 0, "labels": 0}
        lock = threading.Lock()

        def client(number: int) -> None:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for round_ in range(4):
                predictions, labels = make_records(25, seed=number * 10 + round_, prefix=f"c{number}r{round_}-")
                for kind, body in (("predictions", predictions), ("labels", labels)):
                    answer = session.post(f"{base}/api/v1/models/m/{kind}", json=body, headers=headers, timeout=120)
                    with lock:
                        if answer.status_code != 200:
                            failures.append(f"{kind} {answer.status_code} {answer.text[:200]}")
                        else:
                            accepted[kind] += answer.json()["accepted"]
                read = session.get(f"{base}/api/v1/models/m/metrics", params={"segment": "*"}, auth=AUTH, timeout=120)
                if read.status_code != 200:
                    with lock:
                        failures.append(f"metrics {read.status_code}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert failures == []
        assert accepted == {"predictions": 800, "labels": 800}
        # writes are queued in the inbox and aggregated by the workers' drainers within seconds
        for _ in range(1200):  # a bound, not a timing
            progress = requests.get(f"{base}/api/v1/models/m/ingest", auth=AUTH, timeout=60).json()
            if progress["queued_predictions"] == progress["queued_labels"] == 0:
                break
            time.sleep(0.1)
        scraped = requests.get(f"{base}/metrics", auth=AUTH, timeout=120).text
        assert 'classifier_monitor_predictions{model="m"' in scraped
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        counts = [conn.execute(statement).scalar_one() for statement in (
            select(func.count()).select_from(Prediction), select(func.count()).select_from(Label),
            select(func.sum(PredictionCount.n)), select(func.sum(ConfusionCount.n)))]
    engine.dispose()
    assert counts == [800, 800, 800, 800]
