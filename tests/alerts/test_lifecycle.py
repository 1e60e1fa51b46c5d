"""The state machine of one series: pending, firing, hysteresis, reminders, flapping."""

from __future__ import annotations

from monitor.alerts.lifecycle import Policy, SeriesState, advance

DAY = 86400
POLICY = Policy(pending_evaluations=2, resolve_evaluations=2, repeat_interval=3 * DAY)


def run(observations: list[str], severity: str = "warning", policy: Policy = POLICY) -> tuple[SeriesState, list[list[str]]]:
    state, history = SeriesState(), []
    for day, observation in enumerate(observations):
        state, transitions = advance(state, observation, severity, day * DAY, policy)
        history.append(transitions)
    return state, history


def test_it_waits_for_the_pending_period_before_firing() -> None:
    state, history = run(["breach", "breach"])
    assert history == [["pending"], ["firing"]]
    assert state.status == "firing" and state.started_at == 0


def test_a_single_breach_is_cancelled_and_never_notifies() -> None:
    state, history = run(["breach", "clear", "clear"])
    assert history == [["pending"], ["cancel"], []]
    assert state.status == "ok"


def test_a_critical_collapse_fires_at_once() -> None:
    _, history = run(["breach"], severity="critical")
    assert history == [["pending", "firing"]]


def test_it_resolves_only_after_enough_clear_evaluations() -> None:
    state, history = run(["breach", "breach", "clear", "hold", "clear", "clear"])
    assert history == [["pending"], ["firing"], [], [], [], ["resolved"]]
    assert state.status == "ok"


def test_provisional_windows_neither_fire_nor_resolve() -> None:
    _, history = run(["breach", "provisional", "provisional", "breach", "provisional", "clear", "provisional", "clear"])
    assert history == [["pending"], [], [], ["firing"], [], [], [], ["resolved"]]


def test_insufficient_data_cancels_a_pending_alert_but_does_not_resolve_a_firing_one() -> None:
    state, history = run(["breach", "insufficient"])
    assert history[-1] == ["cancel"] and state.status == "insufficient_data"
    state, history = run(["breach", "breach", "insufficient", "insufficient", "clear"])
    assert state.status == "firing" and not any("resolved" in h for h in history)


def test_a_flapping_series_does_not_notify_on_every_flip() -> None:
    _, history = run(["breach", "clear"] * 20)
    notifications = [t for h in history for t in h if t in ("firing", "resolved", "reminder")]
    assert notifications == []


def test_it_reminds_after_the_repeat_interval_unless_acknowledged() -> None:
    _, history = run(["breach"] * 8)
    assert [i for i, h in enumerate(history) if "reminder" in h] == [4, 7]
    state, _ = run(["breach"] * 2)
    state = SeriesState(**{**state.__dict__, "acknowledged": True})
    for day in range(2, 9):
        state, transitions = advance(state, "breach", "warning", day * DAY, POLICY)
        assert transitions == []


def test_an_escalation_to_critical_notifies_once() -> None:
    state, _ = run(["breach", "breach"])
    state, transitions = advance(state, "breach", "critical", 2 * DAY, POLICY)
    assert transitions == ["escalated"] and state.severity == "critical"
    state, transitions = advance(state, "breach", "critical", 3 * DAY, POLICY)
    assert transitions == []
