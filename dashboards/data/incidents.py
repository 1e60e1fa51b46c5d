"""Data access for incidents (Overview and Alerts pages): the records, the slice they name
with a link to its evidence, and the user actions (acknowledge, silence).

Reads and writes go through the read layer (`monitor.read.incidents`); the actions run in
their own short write transaction and return an `alerts.Outcome` (never raising for user
mistakes: unknown id, empty name, bad duration).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from dashboards.data import common
from dashboards.data.alerts import SILENCE_DURATIONS, Outcome
from dashboards.data.core import Result
from dashboards.data.triage import incident_links, with_current
from monitor.read import alerts as alert_service
from monitor.read import incidents as service
from monitor.timeutil import now_epoch, parse_duration

STATES = ("all", "open", "resolved")


def read_incidents(conn: Connection, model: str | None, state: str = "all") -> pd.DataFrame:
    """Incident records with `cause` and `href`, newest first (inside the caller's transaction),
    and `now_*`: the newest evaluation of the cause slice (`triage.with_current`)."""
    frame = incident_links(service.incidents(conn, model=model, state=state if state in service.STATES else "all"))
    return with_current(frame, alert_service.alerts(conn, model=model) if not frame.empty else pd.DataFrame())


def incidents(model: str | None, state: str = "all") -> Result:
    """Incident records of `model` (all models for None) with `cause` and `href`."""
    with common.read() as conn:
        frame = read_incidents(conn, model, state)
    result = Result(frame)
    if frame.empty:
        result.message = "No incidents" if state in ("all", None) else f"No {state} incidents"
        result.hint = ("An incident groups the firing recall alerts of one class under the slice that "
                       "explains them ([models.incidents] in monitor.toml).")
    return result


def acknowledge_incident(incident_id: int | None, by: str | None, comment: str | None = None) -> Outcome:
    """Acknowledge incident `incident_id` as `by` (persisted; stops its reminders)."""
    name = (by or "").strip()
    if incident_id is None:
        return Outcome(False, "Choose an incident first.")
    if not name:
        return Outcome(False, "Enter your name: acknowledgements say who took the incident.")
    try:
        with common.write() as conn:
            service.acknowledge(conn, int(incident_id), by=name[:200], comment=(comment or None))
    except LookupError as error:
        return Outcome(False, str(error))
    return Outcome(True, f"Incident #{int(incident_id)} acknowledged by {name[:200]}.")


def silence_incident(incident_id: int | None, by: str | None, duration: str | None) -> Outcome:
    """Mute incident `incident_id`'s notifications for `duration` (e.g. '1d')."""
    name = (by or "").strip()
    if incident_id is None:
        return Outcome(False, "Choose an incident first.")
    if not name:
        return Outcome(False, "Enter your name: silences say who muted the incident.")
    if duration not in SILENCE_DURATIONS:
        return Outcome(False, f"Choose a duration ({', '.join(SILENCE_DURATIONS)}).")
    try:
        with common.write() as conn:
            service.silence(conn, int(incident_id), until=now_epoch() + parse_duration(duration), by=name[:200])
    except (LookupError, ValueError) as error:
        return Outcome(False, str(error))
    return Outcome(True, f"Notifications of incident #{int(incident_id)} silenced for {duration}.")
