"""The alert state machine of one series (pure; the engine persists what it decides).

States of a series: `ok`, `insufficient_data`, `pending` (in breach, not yet for
`pending_evaluations` window ends), `firing`. An alert is `pending -> firing -> resolved`.
Each *window end* counts once (a tick every minute re-reads the same end, which is not a new
evaluation), and provisional windows count for nothing, so the same data gives the same
timeline live and in a backtest.

- breach: ok -> pending (or firing at once when `pending_evaluations` is 1, or when the breach
  is critical and `critical_fires_at_once`); pending -> firing after enough breaches in a row.
  While firing, a breach resets the resolve streak, may escalate warning -> critical (notifies)
  and sends a reminder when `repeat_interval` of data time passed since the last
  notification and nobody acknowledged the alert.
- clear: pending -> cancelled (the pending alert is dropped, nobody was told); firing ->
  resolved after `resolve_evaluations` clear ends in a row (hysteresis).
- hold / insufficient: pending is cancelled (the condition did not hold); firing keeps firing
  and its resolve streak restarts (no evidence that it is over).
- provisional: nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SEVERITY_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True)
class Policy:
    pending_evaluations: int = 2
    resolve_evaluations: int = 2
    repeat_interval: int = 86400
    critical_fires_at_once: bool = True


@dataclass(frozen=True)
class SeriesState:
    status: str = "ok"  # ok | insufficient_data | pending | firing
    streak: int = 0  # breaches so far (pending) or clears so far (firing)
    severity: str | None = None
    started_at: int | None = None
    last_notified_at: int | None = None
    acknowledged: bool = False


def advance(state: SeriesState, observation: str, severity: str, end: int,
            policy: Policy) -> tuple[SeriesState, list[str]]:
    """The next state after one window end, and the transitions to record, among:
    `pending` (open a pending alert), `cancel` (drop it), `firing`, `escalated`,
    `reminder`, `resolved` (each of the last four notifies)."""
    if observation == "provisional":
        return state, []
    if state.status == "firing":
        return _while_firing(state, observation, severity, end, policy)
    if state.status == "pending":
        if observation != "breach":
            return _idle(observation), ["cancel"]
        streak = state.streak + 1
        if streak >= policy.pending_evaluations or _at_once(severity, policy):
            return _fire(state, severity, end), ["firing"]
        return replace(state, streak=streak, severity=_worst(state.severity, severity)), []
    if observation == "breach":
        opened = SeriesState(status="pending", streak=1, severity=severity, started_at=end)
        if policy.pending_evaluations <= 1 or _at_once(severity, policy):
            return _fire(opened, severity, end), ["pending", "firing"]
        return opened, ["pending"]
    return _idle(observation), []


def _while_firing(state: SeriesState, observation: str, severity: str, end: int,
                  policy: Policy) -> tuple[SeriesState, list[str]]:
    if observation == "clear":
        streak = state.streak + 1
        if streak >= policy.resolve_evaluations:
            return _idle("clear"), ["resolved"]
        return replace(state, streak=streak), []
    if observation != "breach":
        return replace(state, streak=0), []
    state = replace(state, streak=0)
    if SEVERITY_RANK[severity] > SEVERITY_RANK.get(state.severity or "warning", 1):
        return replace(state, severity=severity, last_notified_at=end), ["escalated"]
    last = state.last_notified_at if state.last_notified_at is not None else end
    if not state.acknowledged and end - last >= policy.repeat_interval:
        return replace(state, last_notified_at=end), ["reminder"]
    return state, []


def _fire(state: SeriesState, severity: str, end: int) -> SeriesState:
    return replace(state, status="firing", streak=0, severity=_worst(state.severity, severity),
                   last_notified_at=end)


def _at_once(severity: str, policy: Policy) -> bool:
    return policy.critical_fires_at_once and severity == "critical"


def _worst(a: str | None, b: str) -> str:
    return b if a is None or SEVERITY_RANK[b] > SEVERITY_RANK[a] else a


def _idle(observation: str) -> SeriesState:
    return SeriesState(status="insufficient_data" if observation == "insufficient" else "ok")
