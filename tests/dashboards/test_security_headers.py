"""Security headers on every response of the dashboard's server (issue 12): pages, Dash's
scripts and assets, callbacks, the API, /healthz, /metrics and errors."""

from __future__ import annotations

import base64
import hashlib
import re

from dashboards.app import create_app
from monitor.config import load_config
from tests.dashboards.dash_client import call
from tests.dashboards.seeding import Seeded

INLINE_SCRIPT = re.compile(r"<script(?P<attributes>[^>]*)>(?P<code>.*?)</script>", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)  # e.g. Dash's <!--[if IE]> notice, never run


def directives(policy: str) -> dict[str, list[str]]:
    parts = [p.split() for p in policy.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


def test_every_kind_of_response_carries_the_security_headers(seeded_sqlite: Seeded) -> None:
    app = create_app(load_config(seeded_sqlite.config_path))
    client = app.server.test_client()
    index = client.get("/")
    script = re.search(r'<script src="(/_dash-component-suites/[^"]+)"', index.get_data(as_text=True)).group(1)
    answers = {
        "page": index, "page by path": client.get("/classes"), "layout": client.get("/_dash-layout"),
        "component script": client.get(script), "asset": client.get("/assets/monitor.css"),
        "callback": call(app, [("data-version", "data"), ("database-status", "children")],
                         [("refresh-interval", "n_intervals", 0)], [("data-version", "data", None)]),
        "api": client.get("/api/v1/models"), "api error": client.get("/api/v1/models/nope/metrics"),
        "healthz": client.get("/healthz"), "metrics": client.get("/metrics"),
        "api write refused": client.post("/api/v1/models/triage/predictions", data="not json"),
    }
    for what, answer in answers.items():
        assert answer.status_code < 500, (what, answer.status_code)
        assert answer.headers["X-Frame-Options"] == "DENY", what
        assert answer.headers["X-Content-Type-Options"] == "nosniff", what
        assert answer.headers["Referrer-Policy"] == "no-referrer", what
        policy = directives(answer.headers["Content-Security-Policy"])
        assert policy["frame-ancestors"] == ["'none'"], what
        assert policy["object-src"] == ["'none'"], what
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], what
    app.server.extensions["monitor"].engine.dispose()


def test_the_policy_allows_exactly_the_inline_scripts_of_the_page(seeded_sqlite: Seeded) -> None:
    app = create_app(load_config(seeded_sqlite.config_path))
    index = app.server.test_client().get("/")
    allowed = set(directives(index.headers["Content-Security-Policy"])["script-src"])
    html = COMMENT.sub("", index.get_data(as_text=True))
    inline = [m["code"] for m in INLINE_SCRIPT.finditer(html)
              if "src=" not in m["attributes"] and "application/json" not in m["attributes"]]
    assert len(inline) >= 2  # Dash's renderer and the URL writer (a clientside callback)
    for code in inline:
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed, code[:80]
    app.server.extensions["monitor"].engine.dispose()
