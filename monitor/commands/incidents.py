"""`monitor incidents` (list), `monitor incidents ack ID`, `monitor incidents silence ID`,
`monitor incidents unsilence ID` (docs/contract.md §3 and docs/incidents.md)."""

from __future__ import annotations

import getpass

import click

from monitor.cli_common import (
    State,
    format_option,
    handle_errors,
    model_option,
    pass_state,
    silence_end,
)
from monitor.output import emit
from monitor.timeutil import to_iso


@click.group("incidents", invoke_without_command=True)
@model_option()
@click.option("--state", "state_filter", type=click.Choice(["open", "resolved", "all"]), default="all",
              show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many incidents (newest first).")
@format_option
@click.pass_context
@handle_errors
def incidents_command(context: click.Context, model: str | None, state_filter: str, limit: int | None,
                      fmt: str) -> None:
    """Incidents: the firing alerts grouped by the slice that explains them, newest first.
    `ack`, `silence` and `unsilence` act on one incident."""
    if context.invoked_subcommand is not None:
        return
    from monitor.read import incidents

    state: State = context.find_object(State)  # type: ignore[assignment]
    if model is not None:
        state.config.model(model)
    with state.engine().begin() as conn:
        frame = incidents.incidents(conn, model=model, state=state_filter, limit=limit)
    emit(frame, fmt, view="incidents")


@incidents_command.command("ack")
@click.argument("incident_id", type=int)
@click.option("--by", default=None, help="Who acknowledges (default: the current user).")
@click.option("--comment", default=None)
@pass_state
@handle_errors
def ack_incident_command(state: State, incident_id: int, by: str | None, comment: str | None) -> None:
    """Acknowledge an incident: no more reminders (its resolution is still notified)."""
    from monitor.read.incidents import acknowledge

    with state.engine().begin() as conn:
        try:
            acknowledge(conn, incident_id, by=by or getpass.getuser(), comment=comment)
        except LookupError as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"incident {incident_id} acknowledged")


@incidents_command.command("silence")
@click.argument("incident_id", type=int)
@click.option("--until", default=None, help="End of the silence (ISO 8601 or epoch s).")
@click.option("--for", "duration", default=None, help="Or a duration from now, e.g. 2h or 3d.")
@click.option("--by", default=None, help="Who silences (default: the current user).")
@pass_state
@handle_errors
def silence_incident_command(state: State, incident_id: int, until: str | None, duration: str | None,
                             by: str | None) -> None:
    """Mute an incident's notifications (escalation, reminders, resolution) for a while."""
    from monitor.read.incidents import silence

    end = silence_end(until, duration)
    with state.engine().begin() as conn:
        try:
            silence(conn, incident_id, until=end, by=by or getpass.getuser())
        except (LookupError, ValueError) as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"incident {incident_id} silenced until {to_iso(end)}")


@incidents_command.command("unsilence")
@click.argument("incident_id", type=int)
@pass_state
@handle_errors
def unsilence_incident_command(state: State, incident_id: int) -> None:
    """End an incident's silence now."""
    from monitor.read.incidents import unsilence

    with state.engine().begin() as conn:
        try:
            unsilence(conn, incident_id)
        except LookupError as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"incident {incident_id} unsilenced")
