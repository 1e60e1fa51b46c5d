"""Issue 14's screens without a browser: which filters each page reads, unknown pages answer
404, the Alerts page's triage order, the files record's row arithmetic, drift's display names
and its empty state without a reference, page controls read back from the URL."""

from __future__ import annotations

from pathlib import Path

import dash
import pandas as pd
import pytest

from dashboards.figures.drift import feature_label
from dashboards.layout import FILTERS, page_filters, query_choice
from monitor.config import load_config
from monitor.ingest.report import files_frame
from monitor.simulate import Scenario, simulate, write_config, write_logs
from monitor.store.db import make_engine
from tests.dashboards.helpers import page, running_app, text_of
from tests.dashboards.seeding import Seeded


def test_each_page_declares_the_filters_its_callbacks_read(seeded_sqlite: Seeded) -> None:
    with running_app(seeded_sqlite.config_path):
        used = page_filters()
        paths = {str(p["path"]) for p in dash.page_registry.values()}
    assert set(used) == paths
    assert used["/classes"] == ["model", "window", "range", "class"]  # Classes ignores Segment
    assert used["/drift"] == ["model", "window", "range", "segment"]  # Drift ignores Class
    assert used["/alerts"] == used["/data"] == ["model"]
    assert all(set(names) <= set(FILTERS) for names in used.values())


def test_the_filters_shown_are_exactly_the_filters_the_callbacks_read() -> None:
    """Checked against the callbacks themselves, so a page that starts (or stops) reading a
    filter fails here until its `filters=` says so."""
    with running_app(_config_without_database()) as app:
        app._setup_server()  # moves the pages' callbacks into the app's callback map
        shown = page_filters()
        read: dict[str, set[str]] = {}
        for callback in app.callback_map.values():
            module = getattr(callback.get("callback"), "__module__", None) or ""
            names = {str(i["id"]).removeprefix("filter-") for i in callback["inputs"]
                     if str(i["id"]).startswith("filter-")}
            if module.startswith("dashboards.pages."):
                read.setdefault(module, set()).update(names)
        paths = {str(p["module"]): str(p["path"]) for p in dash.page_registry.values()}
    assert {paths[module]: names for module, names in read.items() if names} == \
        {path: set(names) for path, names in shown.items()}


def test_unknown_pages_answer_404_and_pages_200(seeded_sqlite: Seeded) -> None:
    with running_app(seeded_sqlite.config_path) as app:
        client = app.server.test_client()
        for path in ("/", "/classes", "/classes/", "/drift", "/alerts?model=triage"):
            assert client.get(path).status_code == 200, path
        for path in ("/nope", "/classes/extra", "/x/y/z"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"_dash-app-content" in response.data or b"react-entry-point" in response.data
        assert client.get("/assets/keep-zoom.js").status_code == 200


def test_alerts_are_ordered_for_triage() -> None:
    with running_app(_config_without_database()):
        alerts = page("alerts")
        frame = pd.DataFrame({
            "id": [1, 2, 3, 4, 5, 6],
            "state": ["resolved", "firing", "pending", "firing", "firing", "firing"],
            "severity": ["critical", "warning", "critical", "critical", "critical", "warning"],
            "acknowledged_by": [None, None, None, "carol", None, None],
            "fired_at": ["2024-01-20T00:00:00Z", "2024-01-19T00:00:00Z", None, "2024-01-18T00:00:00Z",
                         "2024-01-10T00:00:00Z", "2024-01-21T00:00:00Z"],
            "started_at": ["2024-01-19T00:00:00Z"] * 2 + ["2024-01-21T00:00:00Z"] + ["2024-01-09T00:00:00Z"] * 3,
        })
        ordered = alerts.triage_order(frame)
    # firing critical unacknowledged, firing critical acknowledged, firing warnings newest first,
    # then pending, then resolved
    assert list(ordered["id"]) == [5, 4, 6, 2, 3, 1]


def test_an_acknowledged_alert_says_so_and_the_table_keeps_message_and_silence(seeded_sqlite: Seeded) -> None:
    with running_app(seeded_sqlite.config_path):
        alerts = page("alerts")
        result = alerts.data.alerts("triage")
        result.frame = result.frame.assign(acknowledged_by=["carol"] + [None] * (len(result.frame) - 1),
                                           silenced_until=["2024-01-25T00:00:00Z"] + [None] * (len(result.frame) - 1))
        table = alerts.alerts_table(result)
    text = text_of(table)
    assert "acknowledged by carol" in text
    assert "silenced until" in text and "2024-01-25 00:00" in text
    assert "message" in text and "Recall of class" in text


def test_every_file_accounts_for_every_row_read(seeded: Seeded) -> None:
    engine = make_engine(seeded.database_url)
    with engine.connect() as conn:
        files = files_frame(conn, ["triage"])
    engine.dispose()
    assert len(files) and (files["rows_skipped"] >= 0).all()
    total = files["rows_accepted"] + files["rows_rejected"] + files["rows_skipped"] + files["rows_waiting"]
    assert (files["rows_read"] == total).all()
    extra = files[files["path"].str.endswith("predictions_extra.csv")].iloc[0]
    assert (extra["rows_read"], extra["rows_accepted"], extra["rows_rejected"]) == (4, 3, 1)


def test_drift_pseudo_features_have_display_names() -> None:
    assert feature_label("__prediction__") == "predicted class (mix)"
    assert feature_label("__score_critical__") == "score of critical"
    assert feature_label("num_0") == "num_0"
    assert feature_label("__score___") == "__score___"


def test_page_controls_read_from_the_url_are_checked(seeded_sqlite: Seeded) -> None:
    assert query_choice("psi", ("js", "psi"), "js") == "psi"
    assert query_choice("<script>", ("js", "psi"), "js") == "js"
    assert query_choice(["psi"], ("js", "psi"), "js") == "js"
    assert query_choice("x" * 600, None, None) is None
    with running_app(seeded_sqlite.config_path):
        drift = page("drift").layout(method="psi", feature="num_1", value="south")
        bogus = page("drift").layout(method="bogus")
        classes = page("classes").layout(metric="precision", ending="2024-01-14T00:00:00+00:00")
    assert _prop(drift, "drift-method") == "psi" and _prop(drift, "drift-feature") == "num_1"
    assert _prop(drift, "drift-segment-value") == "south"
    assert _prop(bogus, "drift-method") == "js"
    assert _prop(classes, "classes-metric") == "precision"
    assert _prop(classes, "classes-confusion-end") == "2024-01-14T00:00:00+00:00"


def test_drift_without_a_reference_says_why_it_is_empty(tmp_path: Path, sqlite_url: str) -> None:
    from monitor.tick import run_tick

    scenario = Scenario(start="2024-01-01", days=3, rows_per_day=200)
    data = simulate(scenario, seed=3)
    write_logs(data, tmp_path, fmt="csv")
    path = write_config(tmp_path, scenario, database_url=sqlite_url)
    path.write_text("\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                              if not line.startswith("reference")), encoding="utf-8")
    config = load_config(path)
    engine = make_engine(config.database_url)
    run_tick(engine, config, as_of=int(pd.Timestamp("2024-01-04", tz="UTC").timestamp()), notify=False)
    engine.dispose()
    with running_app(config):
        ranking, lines, _, _, _, message = page("drift").update_drift(
            None, config.models[0].name, "1d", None, None, "*", "js", "*", None)
    text = text_of(message)
    assert "No drift reference" in text and "reference" in text.split("No drift reference", 1)[1]
    assert ranking.layout.meta["empty"] and "reference" in ranking.layout.meta["message"]


def _prop(component: object, component_id: str) -> object:
    """The `value` of the component with `component_id` inside a layout tree."""
    stack = [component]
    while stack:
        node = stack.pop()
        if getattr(node, "id", None) == component_id:
            return getattr(node, "value", None)
        children = getattr(node, "children", None)
        if isinstance(children, (list, tuple)):
            stack.extend(children)
        elif children is not None:
            stack.append(children)
    raise AssertionError(f"no component {component_id}")


def _config_without_database() -> object:
    from monitor.config import MonitorConfig

    return MonitorConfig.model_validate({"database_url": "sqlite://", "models": [
        {"name": "m", "classes": ["a", "b"]}]})


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    import shutil

    target = tmp_path / "monitor.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"
