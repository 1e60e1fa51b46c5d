"""The application shell: navbar, global filter bar, URL sync, live refresh, page container.

Ids other pages rely on (keep them): `filter-model`, `filter-window`, `filter-range`
(start_date/end_date), `filter-class`, `filter-segment`, `refresh-interval`, `url`, and
`data-version` (a store that changes only when new data was ingested: page callbacks take it
as an Input to refresh live without reloading and without redrawing when nothing changed).

The shell reads the config only, never the database: Dash builds it once when a worker takes
its first request, and a database outage then must not leave the worker without its
callbacks. The model's classes and segments reach the filter bar through `sync_filters`,
which also runs again when the data version changes (e.g. when the database is back).

The URL's query string mirrors the filters both ways: opening a shared URL sets the filters
(`sync_filters`), and changing a filter rewrites the query string in place
(`history.replaceState`, clientside) so the page is not re-rendered by the router.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from sqlalchemy.exc import DBAPIError

from dashboards import availability
from dashboards.data import core
from dashboards.filters import DEFAULT_WINDOW, OVERALL, WINDOWS, from_inputs, parse_query

REFRESH_MS = 10_000

# Keeps the browser URL equal to the filters without a navigation (no router re-render).
URL_WRITER = """
function(model, windowValue, start, end, cls, segment, pathname) {
    const params = new URLSearchParams();
    const pairs = [["model", model], ["window", windowValue], ["from", start], ["to", end],
                   ["class", cls], ["segment", segment]];
    for (const [key, value] of pairs) {
        if (value !== null && value !== undefined && value !== "") {
            params.set(key, String(value).slice(0, key === "from" || key === "to" ? 10 : 500));
        }
    }
    const query = params.toString();
    const target = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    if (target !== window.location.pathname + window.location.search + window.location.hash) {
        window.history.replaceState(window.history.state, "", target);
    }
    return query;
}
"""


def navbar() -> dbc.Navbar:
    """Brand and one link per registered page, in page order."""
    links = [dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact",
                                     id=f"nav-{page['module'].split('.')[-1]}"))
             for page in dash.page_registry.values()]
    return dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("classifier-monitor", href="/", className="fw-semibold"),
            dbc.Nav(links, navbar=True, className="me-auto"),
            html.Span(id="refresh-status", className="navbar-text small text-light"),
        ], fluid=True),
        color="dark", dark=True, className="mb-3")


def filter_bar(models: list[str]) -> dbc.Card:
    """The global filters; pages read them as Inputs (class and segment choices are filled in
    by `sync_filters`)."""
    model = models[0] if models else None
    facets = core.Facets([], [], [])
    labelled = [
        ("Model", dcc.Dropdown(id="filter-model", options=[{"label": m, "value": m} for m in models],
                               value=model, clearable=False, placeholder="no model configured")),
        ("Window", dcc.Dropdown(id="filter-window", options=[{"label": w, "value": w} for w in WINDOWS],
                                value=DEFAULT_WINDOW, clearable=False)),
        ("Date range (window ends)", dcc.DatePickerRange(
            id="filter-range", clearable=True, display_format="YYYY-MM-DD",
            start_date_placeholder_text="recent", end_date_placeholder_text="newest")),
        ("Class", dcc.Dropdown(id="filter-class", options=_class_options(facets),
                               value=facets.default_class, clearable=False)),
        ("Segment", dcc.Dropdown(id="filter-segment", options=_segment_options(facets),
                                 value=OVERALL, clearable=False)),
    ]
    widths = [3, 1, 3, 2, 3]
    columns = [dbc.Col([dbc.Label(label, className="small text-muted mb-0"), control], md=width)
               for (label, control), width in zip(labelled, widths, strict=True)]
    return dbc.Card(dbc.CardBody(dbc.Row(columns, className="g-2")), className="mb-3 filter-bar")


def shell() -> html.Div:
    """The whole page around `dash.page_container` (called per request: reads the config)."""
    models = core.model_names()
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Interval(id="refresh-interval", interval=REFRESH_MS, n_intervals=0),
        dcc.Store(id="data-version"),
        dcc.Store(id="url-query"),
        navbar(),
        dbc.Container([html.Div(id="database-status", className="mb-3"), filter_bar(models),
                       dash.page_container], fluid=True),
    ])


def _class_options(facets: core.Facets) -> list[dict[str, str]]:
    return [{"label": f"{c} (minority)" if c in facets.minority else c, "value": c} for c in facets.classes]


def _segment_options(facets: core.Facets) -> list[dict[str, str]]:
    return [{"label": "overall (*)", "value": OVERALL}] + [{"label": s, "value": s} for s in facets.segments]


def sync_filters(search: str | None, model: str | None, window: str | None, start: str | None,
                 end: str | None, cls: str | None, segment: str | None, _version: Any = None) -> tuple[Any, ...]:
    """URL -> filters, and model -> its class and segment choices.

    Values present in the query string replace the current ones (absent keys keep them);
    a class or segment the model does not have falls back to its default. Unchanged values
    are `no_update` so that nothing downstream fires for nothing.
    """
    query = parse_query(search) if triggered_id() in (None, "url") else {}
    names = core.model_names()
    new_model = query.get("model", model)
    if new_model not in names:
        new_model = names[0] if names else None
    facets = core.facets(new_model)
    new_cls = query.get("cls", cls)
    if new_cls not in facets.classes:
        new_cls = facets.default_class
    new_segment = query.get("segment", segment or OVERALL)
    if new_segment != OVERALL and new_segment not in facets.segments:
        new_segment = OVERALL
    current = from_inputs(model, window, start, end, cls, segment)
    wanted = from_inputs(new_model, query.get("window", window), query.get("start", start),
                         query.get("end", end), new_cls, new_segment)

    def changed(old: Any, new: Any) -> Any:
        return new if old != new else no_update

    return (changed(model, wanted.model), changed(current.window, wanted.window) if window else wanted.window,
            changed(current.start, wanted.start), changed(current.end, wanted.end),
            _class_options(facets), changed(cls, wanted.cls),
            _segment_options(facets), changed(segment, wanted.segment))


def triggered_id() -> Any:
    """The id of the input that fired the running callback (None outside a callback)."""
    try:
        return dash.ctx.triggered_id
    except Exception:  # noqa: BLE001 - no callback context (direct calls in tests)
        return None


def refresh_version(_n_intervals: int, previous: str | None) -> tuple[Any, Any]:
    """(the data version, the database banner); the version is no_update when nothing new was
    ingested, and `UNAVAILABLE_VERSION` while the database does not answer."""
    try:
        version = core.data_version()
    except DBAPIError as error:
        problem = availability.database_problem(error)
        if problem is None:
            raise
        if previous == availability.UNAVAILABLE_VERSION:
            return no_update, no_update
        return availability.UNAVAILABLE_VERSION, availability.banner(problem)
    if version == previous:
        return no_update, no_update
    return version, None


def register_callbacks(app: Dash) -> None:
    """The shell's callbacks, on this app only (not the global callback list)."""
    app.callback(
        Output("filter-model", "value"), Output("filter-window", "value"),
        Output("filter-range", "start_date"), Output("filter-range", "end_date"),
        Output("filter-class", "options"), Output("filter-class", "value"),
        Output("filter-segment", "options"), Output("filter-segment", "value"),
        Input("url", "search"), Input("filter-model", "value"),
        State("filter-window", "value"), State("filter-range", "start_date"),
        State("filter-range", "end_date"), State("filter-class", "value"),
        State("filter-segment", "value"), Input("data-version", "data"),
    )(sync_filters)
    app.callback(Output("data-version", "data"), Output("database-status", "children"),
                 Input("refresh-interval", "n_intervals"), State("data-version", "data"))(refresh_version)
    app.clientside_callback(
        URL_WRITER, Output("url-query", "data"),
        Input("filter-model", "value"), Input("filter-window", "value"),
        Input("filter-range", "start_date"), Input("filter-range", "end_date"),
        Input("filter-class", "value"), Input("filter-segment", "value"),
        Input("url", "pathname"),
        prevent_initial_call=True,  # the URL as loaded is the truth until the filters change
    )
