"""Fuzz the two write endpoints: whatever body and Content-Type a client sends, the answer is
never a 5xx; a 2xx answer accounts for every record (accepted + rejected + skipped + waiting);
and the model's metrics still answer afterwards.

SQLite only, through Flask's test client (no socket per example). Bounded two ways:
MONITOR_FUZZ_EXAMPLES examples (default 100, as the reader fuzz) and MONITOR_FUZZ_SECONDS of
wall time (default 60): once spent, the remaining examples return at once. MONITOR_FUZZ_RANDOM=1
draws new examples on each run instead of the same ones.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.api import register
from tests.api.conftest import _no_secrets, make_config  # noqa: F401 - the autouse fixture

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "100"))
SECONDS = float(os.environ.get("MONITOR_FUZZ_SECONDS", "60"))
# the same examples on every run unless MONITOR_FUZZ_RANDOM is set (then new ones each run)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("MONITOR_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
START = 1_704_067_200  # 2024-01-01T00:00:00Z
FIELDS = ["prediction_id", "timestamp", "prediction", "model_version", "region", "score_ok", "score_rare",
          "label", "label_timestamp"]
CONTENT_TYPES = ["application/json", "application/x-ndjson", "application/jsonl", "application/json; charset=utf-8",
                 "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None,
                 "multipart/form-data; boundary=x", "application/xml"]

strange_text = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "NaN", "nan", "Infinity", "-Infinity", "1e308", "-1e308",
    "1e400", "0x10", "9" * 40, "2024-01-01T00:00:00Z", "2024-02-30", "99999-01-01", "ok", "rare", "\u2028",
    "\ufeff", "null", "[]", "{}", "\"", "\\", "é" * 50, "𝔘" * 3,
])
strange_numbers = st.sampled_from([
    0, -1, 1.5, 1e308, -1e308, 5e-324, 2**53 + 1, 2**60 + 1, 2**63, 2**64 + 3, -(2**63) - 1, 10**30,
    12345678901234567891, START, START + 3600, START * 1000, float("nan"), float("inf"), float("-inf"),
])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    strange_text, strange_numbers)
values = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=3),
                                                          st.dictionaries(st.text(max_size=5), children, max_size=3)),
                      max_leaves=8)
plausible = st.fixed_dictionaries({
    "prediction_id": st.one_of(st.text(min_size=1, max_size=12), st.integers(), strange_numbers),
    "timestamp": st.one_of(st.integers(START, START + 30 * 86400), strange_numbers, strange_text),
    "prediction": st.sampled_from(["ok", "rare", "unknown", ""]),
    "label": st.sampled_from(["ok", "rare", "nope"]),
}, optional={name: values for name in FIELDS[3:] if name != "label"})
records = st.one_of(plausible, st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=6),
                    values)


@st.composite
def bodies(draw: Any) -> tuple[bytes, str | None]:
    """(body, Content-Type): a JSON array, JSON lines with broken lines, or bytes of noise."""
    shape = draw(st.sampled_from(["array", "lines", "noise"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    ascii_only = draw(st.booleans())
    if shape == "noise":
        body = draw(st.binary(max_size=200))
    elif shape == "array":
        items = draw(st.lists(records, max_size=12))
        body = json.dumps(items, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    else:
        lines = draw(st.lists(st.one_of(records.map(lambda r: json.dumps(r, ensure_ascii=ascii_only)),
                                        st.text(max_size=30), st.just(""), st.just("[" * 3000)), max_size=12))
        body = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body  # a UTF-8 BOM
    return body, content_type


def records_in(body: bytes, content_type: str | None) -> int:
    """How many records a body accepted by the API holds, as the API numbers them."""
    text = body.decode("utf-8-sig").strip()
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype == "application/json":
        try:
            value = json.loads(text)
            return len(value) if text.startswith("[") else 1
        except (ValueError, RecursionError):
            pass
    return sum(1 for line in text.split("\n") if line.strip())


def test_it_never_answers_5xx_and_accounts_for_every_record(sqlite_url: str, tmp_path: Path) -> None:
    app = Flask("fuzz")
    register(app, make_config(sqlite_url, tmp_path))
    client = app.test_client()
    deadline = time.monotonic() + SECONDS
    seen: list[int] = []
    accepted: list[int] = []

    @FUZZ
    @given(body=bodies(), kind=st.sampled_from(["predictions", "labels"]))
    def post(body: tuple[bytes, str | None], kind: str) -> None:
        if time.monotonic() > deadline:
            return  # the time budget is spent: the run ends with the examples already tried
        data, content_type = body
        headers = {"Content-Type": content_type} if content_type else {}
        answer = client.post(f"/api/v1/models/m/{kind}", data=data, headers=headers)
        assert answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True)[:300], data[:200])
        payload = answer.get_json(silent=True)
        assert isinstance(payload, dict), answer.get_data(as_text=True)[:300]
        seen.append(answer.status_code)
        if answer.status_code == 200:
            total = payload["accepted"] + payload["rejected"] + payload["skipped"] + payload["waiting"]
            assert total == records_in(data, content_type), (payload, data[:300])
            accepted.append(payload["accepted"])
        else:
            assert payload["error"], payload
            assert answer.status_code in (400, 413, 415), payload

    post()
    assert {200, 400, 415} <= set(seen), seen  # the fuzz reached the ingest path and both refusals
    assert sum(accepted) > 0  # and some records went in
    for path in ("/api/v1/models/m/metrics", "/api/v1/models/m/fairness", "/api/v1/models/m/drift",
                 "/metrics", "/healthz"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True)[:300])
    from monitor.api.routes import stop_background

    stop_background(app)  # the drainer thread a write started: it must not outlive the database
    app.extensions["monitor_api"]["engine"].dispose()
