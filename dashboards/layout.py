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
(`history.replaceState`, clientside) so the page is not re-rendered by the router. Keys that
are not filters (a page's own controls, see `keep_in_url`) are left in place.

Each page shows only the filters it reads: a page declares them with
`dash.register_page(..., filters=("model", "window", ...))` (names in `FILTERS`); pages that
declare nothing fall back to `PAGE_FILTERS`, then to every filter. An unknown page shows none.
"""

from __future__ import annotations

import json
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
    const params = new URLSearchParams(window.location.search);
    const pairs = [["model", model], ["window", windowValue], ["from", start], ["to", end],
                   ["class", cls], ["segment", segment]];
    for (const [key, value] of pairs) {
        if (value !== null && value !== undefined && value !== "") {
            params.set(key, String(value).slice(0, key === "from" || key === "to" ? 10 : 500));
        } else {
            params.delete(key);
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

# The filters of the filter bar, by the names pages declare (`filters=` in register_page).
FILTERS = ("model", "window", "range", "class", "segment")
# Pages that declare nothing: what their callbacks read today (others: every filter).
PAGE_FILTERS = {"/": ("window", "range")}

# Shows the filters the page reads and hides the others (and the bar when none is read).
FILTER_VISIBILITY = """
function(pathname, pages) {
    const path = "/" + String(pathname || "/").replace(/^\\/+|\\/+$/g, "");
    const used = (pages || {})[path] || [];
    const hidden = {display: "none"};
    const styles = __FILTERS__.map(name => used.includes(name) ? {} : hidden);
    return styles.concat([used.length ? {} : hidden]);
}
""".replace("__FILTERS__", json.dumps(FILTERS))

# Opens and closes the collapsed navbar (narrow screens); a navigation closes it.
NAVBAR_TOGGLE = """
function(clicks, pathname, isOpen) {
    const ctx = window.dash_clientside.callback_context;
    const fired = ctx.triggered.length ? ctx.triggered[0].prop_id : "";
    return fired.startsWith("navbar-toggler") ? !isOpen : false;
}
"""

# Writes a page's own controls into the query string (see `keep_in_url`).
PARAM_WRITER = """
function(...values) {
    const keys = __KEYS__;
    const params = new URLSearchParams(window.location.search);
    keys.forEach((key, index) => {
        const value = values[index];
        if (value === null || value === undefined || value === "") {
            params.delete(key);
        } else {
            params.set(key, String(value).slice(0, 500));
        }
    });
    const query = params.toString();
    const target = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    if (target !== window.location.pathname + window.location.search + window.location.hash) {
        window.history.replaceState(window.history.state, "", target);
    }
    return query;
}
"""


def page_filters() -> dict[str, list[str]]:
    """Page path -> the filters it reads (`filters=` of its register_page, else PAGE_FILTERS)."""
    return {str(page["path"]): list(page.get("filters") or PAGE_FILTERS.get(str(page["path"]), FILTERS))
            for page in dash.page_registry.values()}


def keep_in_url(store_id: str, controls: dict[str, str]) -> dcc.Store:
    """Keep a page's own controls in the URL, like the filters: {query key: component id}.

    Call it at the page module's top level and put the returned store in the page layout.
    Writing: a clientside callback puts each control's `value` under its key
    (`history.replaceState`, other keys kept). Reading: Dash passes the query to the page's
    `layout(**query)`; pass each value through `query_choice` before using it as a control's
    initial value. Keys must not be filter keys (model, window, from, to, class, segment).
    """
    dash.clientside_callback(PARAM_WRITER.replace("__KEYS__", json.dumps(list(controls))), Output(store_id, "data"),
                             *[Input(component, "value") for component in controls.values()])
    return dcc.Store(id=store_id)


def query_choice(value: Any, allowed: Any, default: Any) -> Any:
    """A control value read from the URL: `value` when it is one of `allowed`, else `default`
    (a query string is never trusted). `allowed=None` accepts any short text."""
    if not isinstance(value, str) or not value or len(value) > 500:
        return default
    if allowed is None:
        return value
    return value if value in allowed else default


def navbar() -> dbc.Navbar:
    """Brand and one link per registered page, in page order; collapsed behind a toggler on
    narrow screens."""
    links = [dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact",
                                     id=f"nav-{page['module'].split('.')[-1]}"))
             for page in dash.page_registry.values()]
    return dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("classifier-monitor", href="/", className="fw-semibold"),
            dbc.NavbarToggler(id="navbar-toggler", n_clicks=0),
            dbc.Collapse([
                dbc.Nav(links, navbar=True, className="me-auto"),
                html.Span(id="refresh-status", className="navbar-text small text-light"),
            ], id="navbar-collapse", is_open=False, navbar=True),
        ], fluid=True),
        color="dark", dark=True, expand="md", className="mb-3")


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
    columns = [dbc.Col([dbc.Label(label, className="small text-muted mb-0"), control], md=width,
                       id=f"filter-col-{name}")
               for (label, control), width, name in zip(labelled, widths, FILTERS, strict=True)]
    return dbc.Card(dbc.CardBody(dbc.Row(columns, className="g-2")), className="mb-3 filter-bar",
                    id="filter-bar")


def shell() -> html.Div:
    """The whole page around `dash.page_container` (called per request: reads the config)."""
    models = core.model_names()
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Interval(id="refresh-interval", interval=REFRESH_MS, n_intervals=0),
        dcc.Store(id="data-version"),
        dcc.Store(id="url-query"),
        dcc.Store(id="page-filters", data=page_filters()),
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
    app.clientside_callback(
        FILTER_VISIBILITY, *[Output(f"filter-col-{name}", "style") for name in FILTERS],
        Output("filter-bar", "style"), Input("url", "pathname"), State("page-filters", "data"))
    app.clientside_callback(
        NAVBAR_TOGGLE, Output("navbar-collapse", "is_open"), Input("navbar-toggler", "n_clicks"),
        Input("url", "pathname"), State("navbar-collapse", "is_open"), prevent_initial_call=True)
