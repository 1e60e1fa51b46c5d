"""The triage-first additions (issues 13, 15, 17, 18) on the seeded database: open incidents
lead the Overview and the Alerts page (cause slice, drop, interval, support, member series,
a link to the slice), incident actions follow the alerts' rule on who may act, the Classes page
draws the best current recall with the calibration used, and the Data page shows stream
consumers and the HTTP inbox only when they are used."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import recall_score

from dashboards.data import incidents as incident_data
from dashboards.figures.style import is_empty
from monitor.alerts.incidents import incidents_frame
from monitor.alerts.service import alerts_frame
from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.inbox import enqueue, now_micros
from monitor.store.db import make_engine
from monitor.stream.consumer import record_lag
from tests.dashboards.dash_client import call
from tests.dashboards.helpers import page, running_app, text_of
from tests.dashboards.seeding import Seeded
from tests.dashboards.test_pages import oracle_window

TOKEN = "a-token-with-enough-entropy"


def stored(seeded: Seeded) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(incidents, alerts) as the engine stores them."""
    engine = make_engine(seeded.database_url)
    with engine.connect() as conn:
        found = incidents_frame(conn, model="triage"), alerts_frame(conn, model="triage")
    engine.dispose()
    return found


def test_the_overview_leads_with_the_incident_naming_its_cause(seeded: Seeded) -> None:
    incidents, alerts = stored(seeded)
    assert len(incidents) == 1, "the seeded fault (critical in region south) opens one incident"
    incident = incidents.iloc[0]
    assert (incident["segment"], incident["segment_value"]) == ("region", "south")
    with running_app(seeded.config_path):
        cards = page("overview").update_overview(None, "7d", None, None)
    text = text_of(cards)
    assert "Open incidents (1)" in text
    assert "Cause:" in text and "Recall of critical dropped in region=south" in text
    # the drop, its interval and support are the cause slice's in the window that fired
    window = oracle_window(seeded, pd.Timestamp(incident["fired_at"]))
    south = window[window["region"] == "south"]
    expected = recall_score(south["label"] == "critical", south["prediction"] == "critical")
    assert incident["value"] == pytest.approx(expected)
    assert f"{expected:.2f} [" in text and f"n={int((south['label'] == 'critical').sum())}" in text
    assert f"explains {len(alerts[alerts['incident_id'] == incident['id']])} alerts" in text
    assert f"since {str(incident['started_at'])[:10]}" in text
    # incidents come before the alerts they explain, and those are not listed again
    assert text.index("Open incidents") < text.index("Recall of critical (7d") < text.index("Other open alerts")
    assert "6 firing · 0 pending · 1 incident" in text
    assert "No other open alerts." in text
    links = [c.href for c in _walk(cards) if getattr(c, "href", None)]
    assert "/subgroups?model=triage&segment=region&class=critical" in links


def test_the_alerts_page_lists_incidents_and_marks_their_member_alerts(seeded: Seeded) -> None:
    incidents, alerts = stored(seeded)
    with running_app(seeded.config_path):
        table, _choices, _silences, _deliveries, cards, incident_choices = page("alerts").update_alerts(
            None, "triage", "all", None, None)
    assert "Cause:" in text_of(cards) and "region=south" in text_of(cards)
    assert [c["value"] for c in incident_choices] == [int(i) for i in incidents["id"]]
    rows = [r for r in _walk(table) if type(r).__name__ == "Tr"][1:]
    marked = [text_of(r) for r in rows if f"#{int(incidents['id'].iloc[0])} region=south" in text_of(r)]
    assert len(marked) == int(alerts["incident_id"].notna().sum()) == len(rows)


def forge(app: Any, button: str, incident_id: int, by: str) -> Any:
    return call(app, [("incidents-feedback", "children"), ("incidents-action-done", "data")],
                [("incidents-ack", "n_clicks", 1 if button == "incidents-ack" else None),
                 ("incidents-silence", "n_clicks", 1 if button == "incidents-silence" else None)],
                [("incidents-choice", "value", incident_id), ("incidents-by", "value", by),
                 ("incidents-comment", "value", "forged"), ("incidents-duration", "value", "7d")],
                changed=[f"{button}.n_clicks"])


def test_incident_actions_follow_the_alerts_rule_on_who_may_act(writable_seeded: Seeded,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboards.app import create_app

    incident_id = int(stored(writable_seeded)[0]["id"].iloc[0])
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)  # a token alone: the dashboard is read-only
    app = create_app(load_config(writable_seeded.config_path))
    for button in ("incidents-ack", "incidents-silence"):
        answer = forge(app, button, incident_id, "attacker")
        assert answer.status_code == 200 and "MONITOR_BASIC_AUTH" in str(answer.get_json())
    row = stored(writable_seeded)[0].iloc[0]
    assert row["acknowledged_by"] is None and row["silenced_until"] is None
    app.server.extensions["monitor"].engine.dispose()
    monkeypatch.delenv("MONITOR_API_TOKEN")
    with running_app(writable_seeded.config_path):
        alerts = page("alerts")
        assert alerts.perform_on_incident("incidents-ack", incident_id, "  ", None, "1d")[1] is dash_no_update()
        feedback, done = alerts.perform_on_incident("incidents-ack", incident_id, "dana", "on it", "1d")
        assert "acknowledged by dana" in text_of(feedback) and done is not None
        feedback, _ = alerts.perform_on_incident("incidents-silence", incident_id, "dana", None, "4h")
        assert "silenced for 4h" in text_of(feedback)
        assert "unknown" not in text_of(alerts.perform_on_incident("incidents-ack", 999, "dana", None, "1d")[0])
        cards = alerts.update_alerts(None, "triage", "all", None, 1)[4]
    row = stored(writable_seeded)[0].iloc[0]
    assert row["acknowledged_by"] == "dana" and row["silenced_until"] is not None
    assert "acknowledged by dana" in text_of(cards) and "silenced until" in text_of(cards)


def dash_no_update() -> Any:
    from dash import no_update

    return no_update


def test_the_classes_page_draws_the_best_current_recall_with_its_calibration(seeded: Seeded) -> None:
    from dashboards.data import core
    from dashboards.filters import Filters

    with running_app(seeded.config_path):
        figure, note = page("classes").update_best(None, "triage", "7d", None, None, "critical")
        frame = core.class_metrics(Filters(model="triage", window="7d", cls="critical")).frame
    assert not is_empty(figure)
    names = {t.name for t in figure.data if t.name}
    assert {"realized (labelled only)", "estimated (label-free)", "best current (realized + estimated)"} <= names
    part = frame[frame["class"] == "critical"].sort_values("end")
    best = next(t for t in figure.data if t.name == "best current (realized + estimated)")
    assert list(best.y) == pytest.approx(part["recall_best"].astype(float).tolist(), nan_ok=True)
    shown = part[part["recall_best"].notna()]
    assert len(shown) and ((shown["recall_best_low"] <= shown["recall_best"])
                           & (shown["recall_best"] <= shown["recall_best_high"])).all()
    text = text_of(note)
    assert "reference calibration" in text or "rolling calibration" in text
    newest = part[part["recall_estimated"].notna()].iloc[-1]
    assert ("Estimate flagged" in text) == (newest["estimation_warning"] is not None)


def test_the_data_page_shows_stream_consumers_and_the_inbox_only_when_used(writable_seeded: Seeded) -> None:
    with running_app(writable_seeded.config_path):
        assert page("data").update_data(None, "triage")[3] == []
    config = load_config(writable_seeded.config_path)
    engine = make_engine(config.database_url)
    record_lag(engine, config.model("triage"), stream="PREDICTIONS", consumer="monitor-1", pending=42, ack_pending=3)
    with engine.begin() as conn:
        ctx = load_context(conn, config.model("triage"))
        rows = pd.DataFrame({"_row": [1, 2], "prediction_id": ["q-1", "q-2"]})
        assert enqueue(conn, ctx, "predictions", rows, received_at=now_micros()) == 2
    engine.dispose()
    with running_app(writable_seeded.config_path):
        intake = page("data").update_data(None, "triage")[3]
    text = text_of(intake)
    assert "Stream consumers" in text and "PREDICTIONS" in text and "monitor-1" in text and "42" in text
    assert "HTTP inbox" in text and "aggregated through" in text
    inbox_rows = [r for r in _walk(intake[1]) if type(r).__name__ == "Tr"]
    assert text_of(inbox_rows[1]).startswith("triage 2 0 ")


def test_no_incident_gives_an_empty_state_with_a_hint(writable_seeded: Seeded) -> None:
    engine = make_engine(writable_seeded.database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alerts SET incident_id = NULL")
        conn.exec_driver_sql("DELETE FROM incidents")
    engine.dispose()
    with running_app(writable_seeded.config_path):
        result = incident_data.incidents("triage")
        cards = page("alerts").update_alerts(None, "triage", "all", None, None)[4]
        overview = text_of(page("overview").update_overview(None, "7d", None, None))
    assert result.empty and "No incidents" in text_of(cards) and "[models.incidents]" in text_of(cards)
    assert "Open incidents" not in overview and "Open alerts" in overview


def _walk(component: Any) -> list[Any]:
    if component is None or isinstance(component, (str, int, float)):
        return []
    if isinstance(component, (list, tuple)):
        return [c for child in component for c in _walk(child)]
    return [component, *_walk(getattr(component, "children", None))]


def test_an_incident_card_lists_its_evidence_lines_as_text() -> None:
    from dashboards.incidents import incident_card

    row = {"id": 4, "model": "m", "state": "open", "severity": "warning", "class": "c", "cause": "a&b=<b>x</b>&y",
           "href": "/subgroups?model=m&segment=a%26b&class=c", "value": 0.4, "low": 0.3, "high": 0.5,
           "reference_value": 0.8, "support": 40, "explains": ["a&b=<b>x</b>&y", "*"], "n_alerts": 2,
           "started_at": "2024-01-02T00:00:00Z", "fired_at": "2024-01-03T00:00:00Z", "resolved_at": None,
           "evidence": ["feature num_1 drifted (PSI 0.31)", "estimated recall 0.78 vs realized 0.40"]}
    card = incident_card(row)
    items = [c for c in _walk(card) if type(c).__name__ == "Li"]
    assert [text_of(i) for i in items] == row["evidence"]
    text = text_of(card)
    assert "Recall of c dropped in a&b=<b>x</b>&y: 0.40 [0.30, 0.50] vs reference 0.80, n=40" in text
    assert "explains 2 alerts: a&b=<b>x</b>&y, overall" in text and "since 2024-01-02" in text
