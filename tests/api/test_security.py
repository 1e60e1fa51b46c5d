"""Tokens, basic auth, the body limit and hostile strings, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, inspect, select

from monitor.cli import serve_command
from monitor.store.db import make_engine
from monitor.store.models import Prediction, RejectedRow
from tests.api.conftest import flush_inbox, make_config, make_records

TOKEN = "t0ken-with-enough-entropy"


def test_an_unauthenticated_write_is_refused_when_a_token_is_set(sqlite_url: str, tmp_path: Path, serve,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)
    base = serve(make_config(sqlite_url, tmp_path))
    url = f"{base}/api/v1/models/m/predictions"
    predictions, _ = make_records(10)
    missing = requests.post(url, json=predictions, timeout=30)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.post(url, json=predictions, headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=30)
    assert wrong.status_code == 403
    basic = requests.post(url, json=predictions, auth=("user", TOKEN), timeout=30)
    assert basic.status_code == 401
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 0
    good = requests.post(url, json=predictions, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert good.status_code == 200 and good.json()["accepted"] == 10
    # reads stay open without basic auth configured
    assert requests.get(f"{base}/api/v1/models", timeout=30).status_code == 200
    engine.dispose()


def test_the_token_can_come_from_a_file(sqlite_url: str, tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("MONITOR_API_TOKEN_FILE", str(secret_file))
    base = serve(make_config(sqlite_url, tmp_path))
    url = f"{base}/api/v1/models/m/labels"
    assert requests.post(url, json=[], timeout=30).status_code == 401
    assert requests.post(url, json=[], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 200


def test_basic_auth_guards_everything_but_healthz(sqlite_url: str, tmp_path: Path, serve,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_BASIC_AUTH", "admin:pa:ss")  # a password may contain ':'
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)
    base = serve(make_config(sqlite_url, tmp_path))
    assert requests.get(f"{base}/healthz", timeout=30).status_code == 200
    for path in ("/api/v1/models", "/metrics", "/api/v1/alerts", "/some/dashboard/page"):
        refused = requests.get(base + path, timeout=30)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(base + path, auth=("admin", "pa:ss!"), timeout=30).status_code == 401
        assert requests.get(base + path, auth=("admin2", "pa:ss"), timeout=30).status_code == 401
    assert requests.get(f"{base}/api/v1/models", auth=("admin", "pa:ss"), timeout=30).status_code == 200
    assert requests.get(f"{base}/metrics", auth=("admin", "pa:ss"), timeout=30).status_code == 200
    # machines may use the token instead (a Prometheus bearer_token, a pushing service)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{base}/metrics", headers=bearer, timeout=30).status_code == 200
    assert requests.post(f"{base}/api/v1/models/m/labels", json=[], headers=bearer, timeout=30).status_code == 200
    # with a token set, a write is a token matter: basic credentials alone do not write
    assert requests.post(f"{base}/api/v1/models/m/labels", json=[], auth=("admin", "pa:ss"), timeout=30).status_code == 401


@pytest.mark.parametrize("value", ["admin", "admin:", ":secret"])
def test_basic_auth_without_a_user_or_password_refuses_to_start(value: str, sqlite_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask

    from monitor.api import register
    from monitor.config import ConfigError

    monkeypatch.setenv("MONITOR_BASIC_AUTH", value)
    with pytest.raises(ConfigError, match="MONITOR_BASIC_AUTH"):
        register(Flask("x"), make_config(sqlite_url, tmp_path))


def test_a_body_over_the_limit_is_413_json(sqlite_url: str, tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_MAX_BODY_BYTES", "2000")
    base = serve(make_config(sqlite_url, tmp_path))
    url = f"{base}/api/v1/models/m/predictions"
    predictions, _ = make_records(100)
    body = json.dumps(predictions).encode()
    assert len(body) > 2000
    answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert "error" in answer.json()

    def chunks():  # no Content-Length: the limit applies while reading
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    answer = requests.post(url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    small = requests.post(url, json=predictions[:5], timeout=30)
    assert small.status_code == 200 and small.json()["accepted"] == 5


HOSTILE_CLASSES = ["<script>alert(1)</script>", "'; DROP TABLE predictions; --"]
HOSTILE_GROUPS = ['"><img src=x onerror=alert(2)>', "Robert'); DROP TABLE labels;--"]


def test_hostile_class_names_and_segment_values_stay_data(db_url: str, tmp_path: Path, serve) -> None:
    config = make_config(db_url, tmp_path, classes=HOSTILE_CLASSES)
    base = serve(config)
    predictions, labels = make_records(120, classes=HOSTILE_CLASSES, groups=HOSTILE_GROUPS)
    hostile_reject = {"prediction_id": "<script>x</script>", "timestamp": "'; DROP TABLE slices; --",
                      "prediction": HOSTILE_CLASSES[0]}
    answer = requests.post(f"{base}/api/v1/models/m/predictions", json=[*predictions, hostile_reject], timeout=30)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (120, 1)
    requests.post(f"{base}/api/v1/models/m/labels", json=labels, timeout=30).raise_for_status()
    flush_inbox(config)  # the hostile text went through the inbox's JSON and back

    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert {"predictions", "labels", "slices"} <= set(inspect(conn).get_table_names())
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 120
        raw = conn.execute(select(RejectedRow.raw)).scalar_one()
    engine.dispose()
    assert "'; DROP TABLE slices; --" in raw

    answer = requests.get(f"{base}/api/v1/models/m/metrics", timeout=30,
                          params={"from": "2024-01-06T00:00:00Z", "to": "2024-01-06T00:00:00Z"})
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    records = answer.json()
    assert {r["class"] for r in records} == set(HOSTILE_CLASSES)
    assert {r["segment_value"] for r in records} == {"*", *HOSTILE_GROUPS}
    assert sum(r["n_predictions"] for r in records if r["segment"] == "*") == 120 * len(HOSTILE_CLASSES)

    families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{base}/metrics", timeout=30).text)}
    samples = families["classifier_monitor_recall"].samples
    assert {s.labels["class"] for s in samples} == set(HOSTILE_CLASSES)
    assert {s.labels["segment_value"] for s in samples} == {"*", *HOSTILE_GROUPS}

    # a hostile model name in the URL is a 404 in JSON, not reflected as HTML
    answer = requests.get(f"{base}/api/v1/models/%3Cscript%3Ealert(1)%3C%2Fscript%3E/metrics", timeout=30)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/json")


def test_the_server_binds_to_loopback_by_default() -> None:
    host = next(p for p in serve_command.params if p.name == "host")
    assert host.default == "127.0.0.1"
