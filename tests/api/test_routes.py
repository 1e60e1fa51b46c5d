"""The HTTP API of docs/contract.md §4 against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import precision_score, recall_score
from sqlalchemy import func, select

from monitor.store.db import make_engine
from monitor.store.models import Label, Prediction
from tests.api.conftest import CLASSES, flush_inbox, make_config, make_records

WINDOW_END = "2024-01-06T00:00:00Z"  # one 7d window holds all five days


def _count(db_url: str, table: type) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_posted_records_are_counted_exactly_and_metrics_match_sklearn(db_url: str, tmp_path: Path, serve) -> None:
    config = make_config(db_url, tmp_path)
    base = serve(config)
    predictions, labels = make_records(300)
    bad = [{"prediction_id": "x1", "timestamp": "yesterday", "prediction": "ok"},
           {"prediction_id": "x2", "timestamp": START_ISO, "prediction": "unknown-class"}]
    answer = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions + bad, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (300, 2)
    assert [r["row"] for r in body["rejects"]] == [301, 302]
    assert {r["field"] for r in body["rejects"]} == {"timestamp", "prediction"}

    ndjson = "\n".join(json.dumps(r) for r in labels)
    answer = requests.post(f"{base}/api/v1/models/m/labels", data=ndjson,
                           headers={"Content-Type": "application/x-ndjson"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 300
    flush_inbox(config)  # writes are aggregated from the inbox within about a second
    assert _count(db_url, Prediction) == 300
    assert _count(db_url, Label) == 300

    answer = requests.get(f"{base}/api/v1/models/m/metrics",
                          params={"window": "7d", "step": "1d", "from": WINDOW_END, "to": WINDOW_END,
                                  "segment": "*", "class": "rare"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    records = answer.json()
    assert len(records) == 1
    record = records[0]
    assert list(record)[:7] == ["model", "window", "end", "class", "segment", "segment_value", "n_predictions"]
    truth = [r["label"] for r in labels]
    predicted = [r["prediction"] for r in predictions]
    assert record["n_predictions"] == record["n_labeled"] == 300
    assert abs(record["recall"] - recall_score(truth, predicted, pos_label="rare")) < 1e-12
    assert abs(record["precision"] - precision_score(truth, predicted, pos_label="rare")) < 1e-12


START_ISO = "2024-01-01T00:00:00Z"


def test_posting_the_same_records_again_never_double_counts(db_url: str, tmp_path: Path, serve) -> None:
    base = serve(make_config(db_url, tmp_path))
    predictions, _ = make_records(50)
    # ?wait=true: aggregated before the answer, so it can count the skipped rows
    first = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions, params={"wait": "true"},
                          timeout=30).json()
    again = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions, params={"wait": "true"},
                          timeout=30).json()
    assert first["accepted"] == 50
    assert again["accepted"] == 0 and again["skipped"] == 50
    assert _count(db_url, Prediction) == 50


def test_bad_bodies_are_400_and_unknown_models_404(sqlite_url: str, tmp_path: Path, serve) -> None:
    base = serve(make_config(sqlite_url, tmp_path))
    url = f"{base}/api/v1/models/m/predictions"
    for body, content_type in [("[{\"prediction_id\": ", "application/json"), ("", "application/json"),
                               ("[1, 2]", "application/json"), (b"\xff\xfe[", "application/json")]:
        answer = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)
        assert answer.status_code == 400, (body, answer.text)
        assert "error" in answer.json()
    # JSON lines: a bad line is rejected by itself (issue 12), the body is not refused whole
    answer = requests.post(url, data="{\"a\": 1}\nnot json", headers={"Content-Type": "application/x-ndjson"},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == 2 and answer.json()["rejects"][1]["row"] == 2
    assert requests.post(f"{base}/api/v1/models/nope/labels", json=[], timeout=30).status_code == 404
    assert requests.get(f"{base}/api/v1/models/nope/metrics", timeout=30).status_code == 404
    assert requests.get(f"{base}/api/v1/models/m/metrics", params={"window": "7 days"}, timeout=30).status_code == 400
    assert requests.get(f"{base}/api/v1/models/m/metrics", params={"segment": "nope"}, timeout=30).status_code == 400
    assert requests.get(f"{base}/api/v1/alerts", params={"state": "burning"}, timeout=30).status_code == 400
    assert _count(sqlite_url, Prediction) == 0


def test_reads_list_models_alerts_drift_and_fairness(db_url: str, tmp_path: Path, serve) -> None:
    base = serve(make_config(db_url, tmp_path))
    models = requests.get(f"{base}/api/v1/models", timeout=30).json()
    assert models == [{"name": "m", "classes": CLASSES, "minority_classes": ["rare"], "segments": ["region"],
                       "features": [], "bucket": "1h"}]
    assert requests.get(f"{base}/api/v1/alerts", params={"model": "m", "state": "firing"}, timeout=30).json() == []
    for kind in ("drift", "fairness"):
        answer = requests.get(f"{base}/api/v1/models/m/{kind}", timeout=30)
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json(), list)


def test_healthz_reuses_a_success_for_a_moment_and_never_a_failure(db_url: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask
    from sqlalchemy import text

    from monitor.api import health, register

    app = Flask("health")
    register(app, make_config(db_url, tmp_path))
    client = app.test_client()
    engine = make_engine(db_url)

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    try:
        monkeypatch.setattr(health, "FRESH_SECONDS", 3600.0)
        assert client.get("/healthz").status_code == 200
        rename("monitored_models", "monitored_models_away")  # the database looks unmigrated now
        assert client.get("/healthz").status_code == 200  # within FRESH_SECONDS of a success: reused
        monkeypatch.setattr(health, "FRESH_SECONDS", 0.0)
        answer = client.get("/healthz")
        assert answer.status_code == 503 and "monitor db upgrade" in answer.get_json()["error"]
        monkeypatch.setattr(health, "FRESH_SECONDS", 3600.0)
        assert client.get("/healthz").status_code == 503  # a failure is checked again, not reused
        rename("monitored_models_away", "monitored_models")
        assert client.get("/healthz").status_code == 200  # back at once
    finally:
        engine.dispose()


def test_healthz_answers_ok_and_503_when_the_database_is_gone(db_url: str, tmp_path: Path, serve) -> None:
    base = serve(make_config(db_url, tmp_path))
    answer = requests.get(f"{base}/healthz", timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    broken = serve(make_config("postgresql://nobody@127.0.0.1:9/none", tmp_path))
    answer = requests.get(f"{broken}/healthz", timeout=30)
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert "nobody" not in answer.text


def test_prometheus_metrics_parse_and_agree_with_the_api(db_url: str, tmp_path: Path, serve) -> None:
    config = make_config(db_url, tmp_path)
    base = serve(config)
    predictions, labels = make_records(200)
    requests.post(f"{base}/api/v1/models/m/predictions", json=predictions, timeout=30).raise_for_status()
    requests.post(f"{base}/api/v1/models/m/labels", json=labels, timeout=30).raise_for_status()
    flush_inbox(config)
    answer = requests.get(f"{base}/metrics", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    end = int(families["classifier_monitor_window_end_timestamp_seconds"].samples[0].value)
    assert end == 1_704_499_200  # 2024-01-06: first day boundary after the newest data
    api = requests.get(f"{base}/api/v1/models/m/metrics", timeout=30,
                       params={"from": str(end), "to": str(end)}).json()
    expected = {(r["class"], r["segment"], r["segment_value"]): r["recall"] for r in api if r["recall"] is not None}
    scraped = {(s.labels["class"], s.labels["segment"], s.labels["segment_value"]): s.value
               for s in families["classifier_monitor_recall"].samples}
    assert scraped.keys() == expected.keys() and len(scraped) == 6  # 2 classes x (overall + 2 regions)
    assert all(abs(scraped[k] - expected[k]) < 1e-9 for k in expected)
    coverage = {s.labels["segment_value"]: s.value for s in families["classifier_monitor_label_coverage"].samples}
    assert coverage["*"] == 1.0
    errors = {s.labels["part"]: s.value for s in families["classifier_monitor_collect_errors"].samples}
    assert errors == {"metrics": 0.0, "drift": 0.0, "alerts": 0.0}


def test_prometheus_reports_drift_and_alerts_of_an_ingested_model(sqlite_url: str, tmp_path: Path, serve) -> None:
    from monitor.config import load_config
    from monitor.simulate import Fault, Scenario, simulate, write_config, write_logs
    from monitor.tick import run_tick

    scenario = Scenario(days=21, rows_per_day=600, reference_rows=3000, faults=[Fault(start_day=10)])
    write_logs(simulate(scenario, seed=2), tmp_path, fmt="csv")
    config = load_config(write_config(tmp_path, scenario, database_url=sqlite_url))
    engine = make_engine(sqlite_url)
    run_tick(engine, config, notify=False)
    engine.dispose()
    base = serve(config)
    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{base}/metrics", timeout=120).text)}
    errors = {s.labels["part"]: s.value for s in families["classifier_monitor_collect_errors"].samples}
    assert errors == {"metrics": 0.0, "drift": 0.0, "alerts": 0.0}
    end = int(families["classifier_monitor_window_end_timestamp_seconds"].samples[0].value)
    drift = requests.get(f"{base}/api/v1/models/triage/drift", timeout=120,
                         params={"from": str(end), "to": str(end)}).json()
    expected = {}
    for record in drift:
        if record["value"] is not None:
            key = (record["feature"], record["method"])
            expected[key] = max(expected.get(key, float("-inf")), record["value"])
    scraped = {(s.labels["feature"], s.labels["method"]): s.value for s in families["classifier_monitor_drift"].samples}
    assert scraped.keys() == expected.keys() and len(scraped) > 0
    assert all(abs(scraped[k] - expected[k]) < 1e-9 for k in expected)
    firing = requests.get(f"{base}/api/v1/alerts", params={"model": "triage", "state": "firing"}, timeout=60).json()
    gauges = families.get("classifier_monitor_alert_firing")
    assert len(firing) == (len(gauges.samples) if gauges else 0)
    states = {s.labels["state"]: s.value for s in families["classifier_monitor_alerts"].samples}
    assert states["firing"] == len(firing)


def test_concurrent_posts_are_each_counted_once(db_url: str, tmp_path: Path, serve) -> None:
    import threading

    config = make_config(db_url, tmp_path)
    base = serve(config)
    failures: list[str] = []

    def client(number: int) -> None:
        for round_ in range(3):
            predictions, labels = make_records(20, seed=number * 7 + round_, prefix=f"t{number}-{round_}-")
            for kind, body in (("predictions", predictions), ("labels", labels), ("predictions", predictions)):
                answer = requests.post(f"{base}/api/v1/models/m/{kind}", json=body, timeout=120)
                if answer.status_code != 200:
                    failures.append(f"{kind}: {answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    flush_inbox(config)
    assert _count(db_url, Prediction) == _count(db_url, Label) == 360
    engine = make_engine(db_url)
    with engine.connect() as conn:
        from monitor.store.models import ConfusionCount, PredictionCount

        assert conn.execute(select(func.sum(PredictionCount.n))).scalar_one() == 360
        assert conn.execute(select(func.sum(ConfusionCount.n))).scalar_one() == 360
    engine.dispose()
