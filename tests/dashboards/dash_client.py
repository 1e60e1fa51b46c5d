"""Talk to a Dash app the way its front end does: the Flask test client, /_dash-dependencies
and forged POSTs to /_dash-update-component (what an attacker can send without the page)."""

from __future__ import annotations

import base64
import json
from typing import Any

from dash import Dash


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def dependencies(app: Dash, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    answer = app.server.test_client().get("/_dash-dependencies", headers=headers or {})
    assert answer.status_code == 200, answer.status_code
    return answer.get_json()  # type: ignore[no-any-return]


def call(app: Dash, outputs: list[tuple[str, str]], inputs: list[tuple[str, str, Any]],
         state: list[tuple[str, str, Any]] = (), *, headers: dict[str, str] | None = None,
         changed: list[str] | None = None) -> Any:
    """POST one callback call; returns the Flask test response (`.get_json()["response"]`)."""
    ids = [f"{component}.{prop}" for component, prop in outputs]
    output = ids[0] if len(ids) == 1 else ".." + "...".join(ids) + ".."
    specs = [{"id": component, "property": prop} for component, prop in outputs]
    body = {
        "output": output,
        "outputs": specs[0] if len(specs) == 1 else specs,
        "inputs": [{"id": c, "property": p, "value": v} for c, p, v in inputs],
        "state": [{"id": c, "property": p, "value": v} for c, p, v in state],
        "changedPropIds": changed if changed is not None else [f"{c}.{p}" for c, p, _ in inputs[:1]],
    }
    return app.server.test_client().post("/_dash-update-component", data=json.dumps(body),
                                          content_type="application/json", headers=headers or {})
