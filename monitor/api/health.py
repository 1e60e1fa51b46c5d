"""`GET /healthz`: 200 `{"status": "ok"}` when the database answers, else 503.

Open even when basic auth is on (container health checks and load balancers). The error
names the failure class only: no URL, host or credentials leak to an unauthenticated caller.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

log = logging.getLogger("monitor.api")
blueprint = Blueprint("monitor_health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    from monitor.api import engine_for

    try:
        with engine_for(current_app).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
        log.warning("health check failed: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
        response = jsonify({"status": "unavailable", "error": f"database unreachable ({type(error).__name__})"})
        response.status_code = 503
        return response
    return jsonify({"status": "ok"})
