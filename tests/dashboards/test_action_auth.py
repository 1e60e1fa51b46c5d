"""Who may acknowledge and silence alerts through the dashboard (issue 12).

The callbacks are driven as an attacker would: forged POSTs to /_dash-update-component with
a name of their choosing, on a real app over a copy of the seeded database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dash import Dash

from dashboards.app import create_app
from monitor.alerts.service import alerts_frame, silences_frame
from monitor.config import load_config
from monitor.store.db import make_engine
from tests.dashboards.dash_client import basic_auth, call
from tests.dashboards.helpers import page, text_of
from tests.dashboards.seeding import Seeded

TOKEN = "a-token-with-enough-entropy"


@pytest.fixture
def make_app(writable_seeded: Seeded) -> Iterator[Any]:
    apps: list[Dash] = []

    def make() -> Dash:
        app = create_app(load_config(writable_seeded.config_path))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.server.extensions["monitor"].engine.dispose()


def firing_alert(seeded: Seeded) -> int:
    engine = make_engine(seeded.database_url)
    with engine.connect() as conn:
        frame = alerts_frame(conn, model="triage", state="firing")
    engine.dispose()
    assert not frame.empty, "the seeded fault should have fired an alert"
    return int(frame["id"].iloc[0])


def stored_actions(seeded: Seeded, alert_id: int) -> tuple[Any, set[str]]:
    """(acknowledged_by of the alert, the names on active silences)."""
    engine = make_engine(seeded.database_url)
    with engine.connect() as conn:
        alerts = alerts_frame(conn, model="triage")
        silences = silences_frame(conn, "triage")
    engine.dispose()
    acknowledged = alerts.loc[alerts["id"] == alert_id, "acknowledged_by"].iloc[0]
    return acknowledged, set(silences["created_by"]) if not silences.empty else set()


def forge(app: Dash, button: str, alert_id: int, by: str, headers: dict[str, str] | None = None) -> Any:
    return call(app, [("alerts-feedback", "children"), ("alerts-action-done", "data")],
                [("alerts-ack", "n_clicks", 1 if button == "alerts-ack" else None),
                 ("alerts-silence", "n_clicks", 1 if button == "alerts-silence" else None)],
                [("alerts-choice", "value", alert_id), ("alerts-by", "value", by),
                 ("alerts-comment", "value", "forged"), ("alerts-duration", "value", "7d")],
                headers=headers, changed=[f"{button}.n_clicks"])


def alerts_layout(app: Dash, headers: dict[str, str] | None = None) -> Any:
    with app.server.test_request_context("/alerts", headers=headers or {}):
        return page("alerts").layout()


def component(tree: Any, component_id: str) -> Any:
    if getattr(tree, "id", None) == component_id:
        return tree
    children = getattr(tree, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found = component(child, component_id)
            if found is not None:
                return found
    return None


def test_with_only_a_token_set_a_forged_callback_changes_nothing(make_app: Any, writable_seeded: Seeded,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)
    app = make_app()
    alert_id = firing_alert(writable_seeded)
    for button in ("alerts-ack", "alerts-silence"):
        answer = forge(app, button, alert_id, "attacker")
        assert answer.status_code == 200
        assert "MONITOR_BASIC_AUTH" in str(answer.get_json())
    assert stored_actions(writable_seeded, alert_id) == (None, set())


def test_with_only_a_token_set_the_buttons_are_disabled_and_say_why(make_app: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)
    tree = alerts_layout(make_app())
    assert component(tree, "alerts-ack").disabled and component(tree, "alerts-silence").disabled
    assert component(tree, "alerts-by").disabled
    assert "Set MONITOR_BASIC_AUTH" in text_of(component(tree, "alerts-read-only"))


def test_with_basic_auth_the_action_is_recorded_under_the_signed_in_user(make_app: Any, writable_seeded: Seeded,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", TOKEN)
    monkeypatch.setenv("MONITOR_BASIC_AUTH", "carol:s3cret")
    app = make_app()
    alert_id = firing_alert(writable_seeded)
    assert forge(app, "alerts-ack", alert_id, "attacker").status_code == 401
    assert forge(app, "alerts-ack", alert_id, "attacker", basic_auth("carol", "wrong")).status_code == 401
    assert stored_actions(writable_seeded, alert_id) == (None, set())
    signed_in = basic_auth("carol", "s3cret")
    for button in ("alerts-ack", "alerts-silence"):
        answer = forge(app, button, alert_id, "attacker", signed_in)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert stored_actions(writable_seeded, alert_id) == ("carol", {"carol"})


def test_with_basic_auth_the_form_shows_the_user_and_the_buttons_work(make_app: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_BASIC_AUTH", "carol:s3cret")
    tree = alerts_layout(make_app(), basic_auth("carol", "s3cret"))
    name = component(tree, "alerts-by")
    assert (name.value, name.disabled) == ("carol", True)
    assert not component(tree, "alerts-ack").disabled
    assert component(tree, "alerts-read-only") is None


def test_without_any_credential_actions_stay_open_under_the_typed_name(make_app: Any, writable_seeded: Seeded,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_API_TOKEN", "MONITOR_BASIC_AUTH", "MONITOR_API_TOKEN_FILE", "MONITOR_BASIC_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    app = make_app()
    alert_id = firing_alert(writable_seeded)
    assert forge(app, "alerts-ack", alert_id, "alice").status_code == 200
    assert stored_actions(writable_seeded, alert_id) == ("alice", set())
    assert not component(alerts_layout(app), "alerts-ack").disabled
