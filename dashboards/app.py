"""The Dash app factory and `monitor serve`.

`create_app(config, engine=None)` builds a multi-page Dash app (pages in `dashboards/pages`,
registered with `dash.register_page`), with the Bootstrap theme served from `assets/` (no
CDN), a navbar and the global filter bar (`dashboards.layout`). The config and the database
engine live in `server.extensions["monitor"]` (a `MonitorHandle`), so callbacks keep no
module-level state and each gunicorn worker has its own engine. The HTTP API, /healthz,
/metrics, basic auth and the security headers are installed by
`monitor.api.register(server, config)`; the app adds the hashes of Dash's inline scripts to
the Content-Security-Policy. Building the app never touches the database, and a database
error in a callback becomes a "Database unavailable" message (`dashboards.availability`).
"""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc  # noqa: F401 - registers the component library
from dash import Dash, _callback
from flask import Response, request
from sqlalchemy import Engine

from dashboards import availability, layout
from dashboards.data.common import MonitorHandle
from monitor import api
from monitor.api import security
from monitor.config import MonitorConfig
from monitor.store.db import make_read_engine

PAGES = Path(__file__).resolve().parent / "pages"
ASSETS = Path(__file__).resolve().parent / "assets"
# the endpoints of Dash's index page: "/" and its catch-all route for every other path
CATCH_ALL = ("/", "/<path:path>")


def create_app(config: MonitorConfig, *, engine: Engine | None = None) -> Dash:
    """A ready-to-serve Dash app for `config` (its Flask server is `app.server`).

    Dash imports the page modules anew for every app and their `dash.callback`s go to a
    process-wide list that an app only takes over at its first request; an app that never
    served one (tests calling callbacks directly) would leave its page callbacks behind for
    the next app, twice registered. Start each app from an empty list.
    """
    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_CALLBACK_MAP.clear()
    _callback.GLOBAL_INLINE_SCRIPTS.clear()
    app = Dash(
        "dashboards",  # the package: page modules are imported as dashboards.pages.<name>
        use_pages=True,
        pages_folder=str(PAGES),
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        title="classifier-monitor",
        update_title=None,  # type: ignore[arg-type]  # Dash documents None (no "Updating..." title); its hint says str
        serve_locally=True,
        on_error=availability.on_callback_error,
    )
    server = app.server
    server.extensions["monitor"] = MonitorHandle(config, engine or make_read_engine(config.database_url))
    app.layout = layout.shell
    layout.register_callbacks(app)
    api.register(server, config)
    server.after_request(_unknown_page_is_404)
    # clientside callbacks are inlined in the index page: the CSP allows them by hash
    security.allow_inline_scripts(server, lambda: list(app.csp_hashes()))
    return app


def _unknown_page_is_404(response: Response) -> Response:
    """Answer 404 for a path that names no page.

    Dash serves its index page for any path (its catch-all route) and draws "not found" in the
    browser, with status 200; crawlers, monitors and scripts need the status. The body stays
    the index page, so a person still sees the navbar and Dash's not-found page."""
    if request.endpoint not in CATCH_ALL or response.status_code != 200:
        return response
    known = {str(page["path"]).strip("/") for page in dash.page_registry.values()}
    if request.path.strip("/") not in known:
        response.status_code = 404
    return response


def serve(config: MonitorConfig, *, host: str = "127.0.0.1", port: int = 8050, debug: bool = False) -> None:
    """Run the dashboard and the HTTP API on the Flask development server (`monitor serve`).

    For production use gunicorn: `gunicorn -w 2 -b 127.0.0.1:8050 dashboards.wsgi:server`.
    """
    app = create_app(config)
    freeze_startup_objects()
    print(f"dashboard on http://{host}:{port}/", flush=True)
    app.run(host=host, port=port, debug=debug, use_reloader=False, dev_tools_disable_version_check=True)


def freeze_startup_objects() -> None:
    """Exclude everything built at start-up from the garbage collector's full passes.

    Dash, plotly, pandas and the page registry leave a large, permanent object graph. A
    callback allocates enough (figure dicts, frames) to trigger a full collection every few
    requests, and each one walked that whole graph: ~110 ms added to every few requests, the
    p95 of bench/dashboard.py. `gc.freeze()` moves the start-up objects to a permanent
    generation (what CPython's docs advise for long-running servers); later garbage is still
    collected. Called by `serve` and `dashboards.wsgi` once the app is built.
    """
    import gc

    gc.collect()
    gc.freeze()

