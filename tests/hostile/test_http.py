"""Issue 12, the HTTP side: no hostile query, body or database state blinds the API.

Against a real server on 127.0.0.1 (tests/api/conftest.py), on SQLite and PostgreSQL where a
database is involved: every bad input is a 4xx JSON answer with a reason, never a 500, and the
monitor keeps answering afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from monitor.store.windows import MAX_WINDOW_ENDS, WindowLimitError, WindowSpec
from tests.api.conftest import _no_secrets, make_config, serve  # noqa: F401 - fixtures

DAY = 86400
START = 1_704_067_200  # 2024-01-01T00:00:00Z


def month_of_predictions(n: int = 720, *, prefix: str = "p") -> tuple[list[dict], list[dict]]:
    """One prediction an hour for 30 days, labelled, alternating regions."""
    rng = np.random.default_rng(3)
    classes = rng.choice(["ok", "rare"], size=n, p=[0.8, 0.2])
    predictions = [{"prediction_id": f"{prefix}{i}", "timestamp": START + i * 3600, "prediction": str(classes[i]),
                    "region": ("north", "south")[i % 2]} for i in range(n)]
    labels = [{"prediction_id": f"{prefix}{i}", "label": str(classes[(i + 1) % n]),
               "label_timestamp": START + i * 3600 + 60} for i in range(n)]
    return predictions, labels


@pytest.fixture
def month(db_url: str, tmp_path: Path, serve) -> str:  # noqa: F811 - the imported fixture
    """Base URL of a server whose model `m` holds 30 days of labelled predictions."""
    base = serve(make_config(db_url, tmp_path))
    predictions, labels = month_of_predictions()
    for kind, records in (("predictions", predictions), ("labels", labels)):
        answer = requests.post(f"{base}/api/v1/models/m/{kind}", json=records, params={"wait": "true"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["accepted"] == len(records), answer.text
    return base


def _get(base: str, kind: str, **params: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/models/m/{kind}", params=params, timeout=60)


# -- 1. query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["metrics", "drift", "fairness"])
def test_it_rejects_a_step_of_one_second_over_a_month_with_a_reason(month: str, kind: str) -> None:
    answer = _get(month, kind, step="1s")
    assert answer.status_code == 400, answer.text[:300]
    message = answer.json()["error"]
    if kind == "drift":  # drift keeps daily histograms and says so before counting ends
        assert "multiples" in message and "step 1s" in message
    else:
        assert f"limit of {MAX_WINDOW_ENDS}" in message and "longer step" in message


@pytest.mark.parametrize("params, words", [
    ({"window": "99999999999999999999d"}, "window is longer than 3650 days"),
    ({"step": "99999999999999999999d"}, "step is longer than 3650 days"),
    ({"window": "0d"}, "positive"),
    ({"window": "-1d"}, "invalid duration"),
    ({"step": "soon"}, "invalid duration"),
    ({"from": "9" * 400}, "from: invalid time"),
    ({"to": "1e400"}, "to: invalid time"),
    ({"from": "99999-01-01"}, "from: invalid time"),
    ({"from": str(10**15)}, "from"),  # parse_time or WindowSpec refuses it, by name
    ({"from": "2024-01-20", "to": "2024-01-10"}, "to is before from"),
    ({"window": "86401s", "step": "1d"}, "periods of 1 s"),
])
def test_it_answers_400_with_the_reason_for_bad_window_parameters(month: str, params: dict, words: str) -> None:
    for kind in ("metrics", "drift", "fairness"):
        answer = _get(month, kind, **params)
        assert answer.status_code == 400, (kind, answer.text[:300])
        drift_grain = kind == "drift" and "multiples of it" in answer.json()["error"]
        assert words in answer.json()["error"] or drift_grain, (kind, answer.json())


@pytest.mark.parametrize("kind, params, words", [
    ("metrics", {"class": "nope"}, "unknown class"),
    ("metrics", {"segment": "planet"}, "unknown segment"),
    ("drift", {"segment": "planet"}, "unknown segment"),
    ("fairness", {"class": "nope"}, "unknown class"),
    ("fairness", {"attribute": "planet"}, "planet"),
    ("fairness", {"metric": "vibes"}, "vibes"),
])
def test_it_answers_400_for_unknown_names(month: str, kind: str, params: dict, words: str) -> None:
    answer = _get(month, kind, **params)
    assert answer.status_code == 400, answer.text[:300]
    assert words in answer.json()["error"]


def test_it_still_answers_good_queries_and_ignores_unknown_parameters(month: str) -> None:
    answer = _get(month, "metrics", step="1d", segment="*", class_="rare", colour="blue")
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()) > 20
    answer = _get(month, "metrics", window="1h", step="1h", **{"from": "2024-01-10", "to": "2024-01-11"})
    assert answer.status_code == 200, answer.text[:300]
    assert len({record["end"] for record in answer.json()}) == 25  # hourly ends, both included


def test_it_refuses_a_dense_array_above_the_cell_limit(sqlite_url: str, tmp_path: Path) -> None:
    import pandas as pd

    from monitor.context import load_context
    from monitor.ingest.pipeline import ingest_frame
    from monitor.metrics.service import metrics_frame
    from monitor.store.db import make_engine

    config = make_config(sqlite_url, tmp_path)
    predictions, _ = month_of_predictions(100)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
        ingest_frame(conn, ctx, "predictions", pd.DataFrame(predictions))
        with pytest.raises(WindowLimitError, match="cells"):
            metrics_frame(conn, ctx, WindowSpec(DAY, 3600, max_cells=50))
        assert len(metrics_frame(conn, ctx, WindowSpec(DAY, 3600))) > 0
    engine.dispose()


def test_window_spec_refuses_what_would_overflow_or_exhaust_memory() -> None:
    with pytest.raises(WindowLimitError):
        WindowSpec(10**20, DAY)
    with pytest.raises(ValueError):
        WindowSpec(DAY, 0)
    with pytest.raises(WindowLimitError, match="window ends"):
        WindowSpec(DAY, 1).ends(START, START + 30 * DAY)
    assert len(WindowSpec(DAY, 1, max_ends=10**7).ends(START, START + 30 * DAY)) == 30 * DAY + 1


@pytest.mark.parametrize("command", ["metrics", "drift", "fairness"])
def test_the_cli_exits_2_with_the_reason_for_a_step_over_the_limit(month: str, db_url: str, tmp_path: Path,
                                                                   command: str) -> None:
    from monitor.cli import main

    config = tmp_path / "monitor.toml"
    config.write_text(f'database_url = "{db_url}"\n[[models]]\nname = "m"\nclasses = ["ok", "rare"]\n'
                      'minority_classes = ["rare"]\nsegments = ["region"]\nbucket = "1h"\n')
    result = CliRunner().invoke(main, ["--config", str(config), command, "--step", "1s"])
    assert result.exit_code == 2, result.output
    assert ("multiples of it" if command == "drift" else "longer step") in result.output
    result = CliRunner().invoke(main, ["--config", str(config), command, "--window", "99999999999d"])
    assert result.exit_code in (1, 2), result.output
    assert "longer than 3650 days" in result.output


# -- 3. the database down or unmigrated ----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that answers but was never migrated (no tables)."""
    from tests.conftest import new_postgres_database

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return new_postgres_database(request, migrated=False)


def _every_read(base: str) -> dict[str, requests.Response]:
    return {path: requests.get(f"{base}{path}", timeout=30)
            for path in ("/healthz", "/metrics", "/api/v1/models", "/api/v1/models/m/metrics", "/api/v1/alerts")}


@pytest.mark.parametrize("url", ["postgresql://watcher@127.0.0.1:1/none", "sqlite:////nonexistent-dir/x/monitor.db"])
def test_it_answers_json_503_with_the_reason_while_the_database_is_down(tmp_path: Path, serve,  # noqa: F811
                                                                         url: str) -> None:
    base = serve(make_config(url, tmp_path))
    for path, answer in _every_read(base).items():
        assert answer.status_code == 503, (path, answer.text[:300])
        assert answer.headers["Content-Type"].startswith("application/json"), path
        assert answer.json()["error"].startswith("database unavailable ("), (path, answer.json())
        assert "watcher" not in answer.text and "nonexistent" not in answer.text  # nothing of the URL leaks
    answer = requests.post(f"{base}/api/v1/models/m/predictions", json=[], timeout=30)
    assert answer.status_code == 503 and "database unavailable" in answer.json()["error"]


def test_it_answers_503_saying_to_run_db_upgrade_on_an_unmigrated_database(empty_db_url: str, tmp_path: Path,
                                                                          serve) -> None:  # noqa: F811
    base = serve(make_config(empty_db_url, tmp_path))
    for path, answer in _every_read(base).items():
        assert answer.status_code == 503, (path, answer.text[:300])
        assert "run `monitor db upgrade`" in answer.json()["error"], (path, answer.json())
    predictions, _ = month_of_predictions(3)
    answer = requests.post(f"{base}/api/v1/models/m/predictions", json=predictions, timeout=30)
    assert answer.status_code == 503 and "monitor db upgrade" in answer.json()["error"]


def test_healthz_and_metrics_answer_200_once_the_database_is_migrated(empty_db_url: str, tmp_path: Path,
                                                                      serve) -> None:  # noqa: F811
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade

    base = serve(make_config(empty_db_url, tmp_path))
    assert requests.get(f"{base}/healthz", timeout=30).status_code == 503
    engine = make_engine(empty_db_url)
    upgrade(engine)
    engine.dispose()
    for path, answer in _every_read(base).items():
        assert answer.status_code == 200, (path, answer.text[:300])


# -- 2. write bodies -----------------------------------------------------------------------------

GOOD = {"timestamp": START + 3600, "prediction": "ok", "region": "north"}


def _post(base: str, body: str | bytes, content_type: str | None = "application/json",
          kind: str = "predictions", *, wait: bool = False) -> requests.Response:
    """POST a body; `wait`: aggregated before the answer (?wait=true), so that a test can read
    the stored rows at once (without it they are queued in the inbox)."""
    headers = {"Content-Type": content_type} if content_type else {}
    params = {"wait": "true"} if wait else {}
    return requests.post(f"{base}/api/v1/models/m/{kind}", data=body, headers=headers, params=params, timeout=60)


def _stored_ids(db_url: str) -> list[str]:
    from sqlalchemy import select

    from monitor.store.db import make_engine
    from monitor.store.models import Prediction

    engine = make_engine(db_url)
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(Prediction.prediction_id)).scalars())
    engine.dispose()
    return ids


def _adds_up(body: dict, records: int) -> bool:
    return body["accepted"] + body["rejected"] + body["skipped"] + body["waiting"] == records


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None,
                                          "application/json; charset=latin-1", "application/xml"])
def test_it_answers_415_to_a_body_that_is_not_declared_json(sqlite_url: str, tmp_path: Path, serve,  # noqa: F811
                                                            content_type: str | None) -> None:
    base = serve(make_config(sqlite_url, tmp_path))
    answer = _post(base, json.dumps([{"prediction_id": "a", **GOOD}]), content_type)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["error"] or "UTF-8" in answer.json()["error"]
    assert _stored_ids(sqlite_url) == []


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson", "application/jsonl",
                                          "application/json; charset=utf-8", "Application/JSON"])
def test_it_accepts_json_and_json_lines_content_types(sqlite_url: str, tmp_path: Path, serve,  # noqa: F811
                                                      content_type: str) -> None:
    base = serve(make_config(sqlite_url, tmp_path))
    lines = "\n".join(json.dumps({"prediction_id": f"c{i}", **GOOD}) for i in range(3))
    answer = _post(base, lines, content_type)
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text


def test_it_keeps_ids_above_two_to_the_53_exact(db_url: str, tmp_path: Path, serve) -> None:  # noqa: F811
    base = serve(make_config(db_url, tmp_path))
    ids = [2**60 + 1, 12345678901234567891, 2**64 + 3, 9007199254740993]
    body = "[" + ",".join(f'{{"prediction_id": {i}, "timestamp": {START}, "prediction": "ok", "region": {i}}}'
                          for i in ids) + "]"
    answer = _post(base, body, wait=True)
    assert answer.status_code == 200 and answer.json()["accepted"] == 4, answer.text
    assert _stored_ids(db_url) == sorted(str(i) for i in ids)
    labels = "\n".join(f'{{"prediction_id": {i}, "label": "ok", "label_timestamp": {START + 60}}}' for i in ids)
    answer = _post(base, labels, "application/x-ndjson", kind="labels", wait=True)
    assert answer.status_code == 200 and answer.json()["accepted"] == 4, answer.text  # joined exactly
    segments = requests.get(f"{base}/api/v1/models/m/metrics", timeout=30,
                            params={"segment": "region", "class": "ok"}).json()
    assert {str(i) for i in ids} <= {r["segment_value"] for r in segments}


def test_it_rejects_one_bad_json_line_by_itself_with_its_line_number(db_url: str, tmp_path: Path,
                                                                      serve) -> None:  # noqa: F811
    base = serve(make_config(db_url, tmp_path))
    lines = [json.dumps({"prediction_id": "l1", **GOOD}), '{"prediction_id": "l2", "timest', "",
             "[" * 100_000, "7", json.dumps({"prediction_id": "l6", **GOOD})]
    answer = _post(base, "\n".join(lines), "application/x-ndjson", wait=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 3) and _adds_up(body, 5)
    reasons = {r["row"]: r["reason"] for r in body["rejects"]}
    assert reasons[2].startswith("line 2 is not valid JSON")
    assert reasons[4] == "line 4 is JSON nested too deeply"
    assert reasons[5] == "record is a number, not a JSON object"
    assert _stored_ids(db_url) == ["l1", "l6"]


def test_it_answers_400_to_an_array_nested_a_hundred_thousand_deep(sqlite_url: str, tmp_path: Path,
                                                                     serve) -> None:  # noqa: F811
    base = serve(make_config(sqlite_url, tmp_path))
    answer = _post(base, "[" * 100_000 + "]" * 100_000)
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"]
    answer = _post(base, json.dumps([{"prediction_id": "d", **GOOD, "region": [[[[["x"]]]]]}]))
    assert answer.status_code == 200 and answer.json()["rejects"][0]["field"] == "region"
    assert requests.get(f"{base}/healthz", timeout=30).status_code == 200


def test_it_accepts_a_utf8_bom(sqlite_url: str, tmp_path: Path, serve) -> None:  # noqa: F811
    base = serve(make_config(sqlite_url, tmp_path))
    body = "\ufeff" + json.dumps([{"prediction_id": "bom", **GOOD}])
    assert _post(base, body.encode("utf-8")).json()["accepted"] == 1
    lines = "\ufeff" + json.dumps({"prediction_id": "bom2", **GOOD}) + "\n"
    assert _post(base, lines.encode("utf-8"), "application/x-ndjson").json()["accepted"] == 1


def test_it_rejects_records_that_are_not_objects_or_carry_unstorable_text(db_url: str, tmp_path: Path,
                                                                          serve) -> None:  # noqa: F811
    base = serve(make_config(db_url, tmp_path))
    records = [{"prediction_id": "fine", **GOOD}, 5, "text", None, [1, 2], True,
               {"prediction_id": "nul\u0000", **GOOD}, {"prediction_id": "lone\ud800", **GOOD},
               {"prediction_id": "nested", **GOOD, "prediction": {"class": "ok"}}]
    answer = _post(base, json.dumps(records))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (1, 8) and _adds_up(body, 9)
    reasons = [r["reason"] for r in body["rejects"]]
    assert reasons[:5] == ["record is a number, not a JSON object", "record is a string, not a JSON object",
                           "record is null, not a JSON object", "record is an array, not a JSON object",
                           "record is a boolean, not a JSON object"]
    assert reasons[5:] == ["contains a NUL character", "contains an unpaired surrogate (not valid Unicode)",
                           "nested JSON (object or array) where a single value is expected"]
    rejects = requests.get(f"{base}/api/v1/models", timeout=30)  # the stored rejects did not break reads
    assert rejects.status_code == 200


def test_it_rejects_a_record_with_a_million_keys_without_hanging(sqlite_url: str, tmp_path: Path,
                                                                 serve) -> None:  # noqa: F811
    import time

    base = serve(make_config(sqlite_url, tmp_path))
    wide = "{" + ",".join(f'"{i}":0' for i in range(1_000_000)) + "}"  # 8.9 MB, under the body limit
    body = "\n".join([json.dumps({"prediction_id": "narrow", **GOOD}), wide])
    started = time.monotonic()
    answer = _post(base, body, "application/x-ndjson")
    assert time.monotonic() - started < 30
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["rejects"] == [{"row": 2, "field": "",
                                         "reason": "record has 1000000 fields, more than the limit of 1000"}]
    assert answer.json()["accepted"] == 1


def test_it_answers_413_to_more_records_than_one_request_may_hold(sqlite_url: str, tmp_path: Path,
                                                                   serve) -> None:  # noqa: F811
    from monitor.api.bodies import MAX_RECORDS

    base = serve(make_config(sqlite_url, tmp_path))
    answer = _post(base, "[" + ",".join(["{}"] * (MAX_RECORDS + 1)) + "]")
    assert answer.status_code == 413 and "smaller batches" in answer.json()["error"]
    answer = _post(base, "{}\n" * (MAX_RECORDS + 1), "application/x-ndjson")
    assert answer.status_code == 413


@pytest.mark.parametrize("body, content_type", [("[1, 2]", "application/json"), ("5", "application/json"),
                                                ('"text"', "application/json"),
                                                ("a,b,c\n1,2,3\n", "application/x-ndjson"),
                                                ("[[[", "application/json"), (b"\xff\xfe[", "application/json")])
def test_it_answers_400_to_a_body_without_any_json_object(sqlite_url: str, tmp_path: Path, serve,  # noqa: F811
                                                          body: str, content_type: str) -> None:
    base = serve(make_config(sqlite_url, tmp_path))
    answer = _post(base, body, content_type)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]
    empty = _post(base, "[]").json()
    assert empty.pop("aggregated_through")  # a time: how far the model's inbox is aggregated
    assert empty == {"accepted": 0, "rejected": 0, "skipped": 0, "waiting": 0, "rejects": [],
                     "rejects_truncated": False, "queued": 0}


# -- 4. /metrics bounded -------------------------------------------------------------------------


def _many_segments(db_url: str, tmp_path: Path, n_values: int, **limits: int):  # type: ignore[no-untyped-def]
    """A config whose model has `n_values` region values, each with one labelled prediction
    (written through the ingest pipeline), except 40 predictions in region "big"."""
    import pandas as pd

    from monitor.context import load_context
    from monitor.ingest.pipeline import ingest_frame
    from monitor.store.db import make_engine

    config = make_config(db_url, tmp_path, limits={"max_segment_values": n_values + 10, **limits})
    ids = [f"s{i}" for i in range(n_values + 40)]
    regions = [f"r{i}" for i in range(n_values)] + ["big"] * 40
    classes = ["rare" if i % 5 == 0 else "ok" for i in range(len(ids))]
    times = [START + (i % 96) * 3600 for i in range(len(ids))]
    engine = make_engine(db_url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
        predictions = pd.DataFrame({"prediction_id": ids, "timestamp": times, "prediction": classes, "region": regions})
        assert ingest_frame(conn, ctx, "predictions", predictions).accepted == len(ids)
        labels = pd.DataFrame({"prediction_id": ids, "label": classes[1:] + classes[:1],
                               "label_timestamp": [t + 60 for t in times]})
        assert ingest_frame(conn, ctx, "labels", labels).accepted == len(ids)
    engine.dispose()
    return config


def _scrape(base: str) -> tuple[dict, int, int]:
    """(families by name, number of samples, body size in bytes)."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = requests.get(f"{base}/metrics", timeout=300)
    assert answer.status_code == 200, answer.text[:300]
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    return families, sum(len(f.samples) for f in families.values()), len(answer.content)


def test_metrics_export_at_most_the_series_cap_overall_first_and_count_the_rest(db_url: str, tmp_path: Path,
                                                                                 serve) -> None:  # noqa: F811
    capped = _many_segments(db_url, tmp_path, 600, max_metrics_series=300)
    families, samples, _ = _scrape(serve(capped))
    assert samples <= 300 + 1  # the cap, and the dropped gauge itself
    recall = families["classifier_monitor_recall"].samples
    overall = {s.labels["class"] for s in recall if s.labels["segment_value"] == "*"}
    assert overall == {"ok", "rare"}
    kept = {s.labels["segment_value"] for s in families["classifier_monitor_support"].samples}
    assert "big" in kept and len(kept) < 600  # the largest segment survives the cap
    dropped = families["classifier_monitor_series_dropped"].samples[0].value
    uncapped = make_config(db_url, tmp_path / "uncapped", limits={"max_segment_values": 700,
                                                                 "max_metrics_series": 1_000_000})
    _, everything, _ = _scrape(serve(uncapped))
    assert dropped > 0 and samples - 1 + dropped == everything - 1
    assert _scrape(serve(uncapped))[0]["classifier_monitor_series_dropped"].samples[0].value == 0


@pytest.mark.slow
def test_metrics_stay_small_with_thirty_thousand_segment_values(sqlite_url: str, tmp_path: Path,
                                                                 serve) -> None:  # noqa: F811
    config = _many_segments(sqlite_url, tmp_path, 30_000)  # 100,000 made a 26 MB scrape before the cap
    families, samples, size = _scrape(serve(config))
    assert samples <= 10_001 and size < 2_500_000, (samples, size)
    assert families["classifier_monitor_series_dropped"].samples[0].value > 100_000
