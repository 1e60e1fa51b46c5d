"""`monitor alerts`, `monitor backtest`, `monitor ack`, `monitor silence`, `monitor silences`,
`monitor unsilence` (docs/contract.md §3 and docs/alerts.md)."""

from __future__ import annotations

import getpass

import click

from monitor.cli_common import (
    State,
    duration_callback,
    format_option,
    handle_errors,
    model_option,
    pass_state,
    time_callback,
)
from monitor.output import emit
from monitor.timeutil import now_epoch, parse_duration, parse_time


@click.command("alerts")
@model_option()
@click.option("--state", "state_filter", type=click.Choice(["pending", "firing", "resolved", "all"]), default="all",
              show_default=True)
@click.option("--limit", type=int, default=None, help="At most this many alerts (newest first).")
@click.option("--series", is_flag=True, help="Show the state of every series instead (ok, insufficient_data, ...).")
@format_option
@pass_state
@handle_errors
def alerts_command(state: State, model: str | None, state_filter: str, limit: int | None,
                   series: bool, fmt: str) -> None:
    """Alert history, newest first."""
    from monitor.read import alerts

    if model is not None:
        state.config.model(model)
    with state.engine().begin() as conn:
        frame = alerts.alert_series(conn, model=model) if series else alerts.alerts(
            conn, model=model, state=state_filter, limit=limit)
    emit(frame, fmt)


@click.command("backtest")
@click.option("--model", "model", required=True, help="Model name.")
@click.option("--from", "start", required=True, callback=time_callback, help="First clock value (ISO 8601 or epoch s).")
@click.option("--to", "end", required=True, callback=time_callback, help="Last clock value.")
@click.option("--step", default="1d", show_default=True, callback=duration_callback, help="Clock step between ticks.")
@click.option("--db", "db_url", default=None, help="Database for the replay (default: a new SQLite file in a temp folder).")
@format_option
@pass_state
@handle_errors
def backtest_command(state: State, model: str, start: int, end: int, step: int, db_url: str | None,
                     fmt: str) -> None:
    """Replay history in time order into a separate database and print the alert timeline."""
    from monitor.alerts.backtest import default_database_url, run_backtest

    config = state.config
    if end < start:
        raise click.UsageError("--to must not be before --from")
    try:
        config.model(model)
    except Exception as error:  # noqa: BLE001 - ConfigError -> usage error with its message
        raise click.UsageError(str(error)) from None
    url = db_url or default_database_url()
    click.echo(f"backtest of {model}: replaying into {url}", err=True)
    result = run_backtest(config, model=model, start=start, end=end, step=step, database_url=url)
    click.echo(f"{result.ticks} ticks, {len(result.timeline)} alerts", err=True)
    emit(result.timeline, fmt)


@click.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", default=None, help="Who acknowledges (default: the current user).")
@click.option("--comment", default=None)
@pass_state
@handle_errors
def ack_command(state: State, alert_id: int, by: str | None, comment: str | None) -> None:
    """Acknowledge an alert: no more reminders (its resolution is still notified)."""
    from monitor.read.alerts import acknowledge

    with state.engine().begin() as conn:
        try:
            acknowledge(conn, alert_id, by=by or getpass.getuser(), comment=comment)
        except LookupError as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"alert {alert_id} acknowledged")


@click.command("silence")
@click.option("--model", "model", required=True)
@click.option("--rule", default=None)
@click.option("--class", "class_", default=None)
@click.option("--segment", default=None, help="Segment attribute, e.g. region.")
@click.option("--value", "segment_value", default=None, help="Segment value, e.g. south.")
@click.option("--until", default=None, help="End of the silence (ISO 8601 or epoch s).")
@click.option("--for", "duration", default=None, help="Or a duration from now, e.g. 2h or 3d.")
@click.option("--by", default=None, help="Who silences (default: the current user).")
@click.option("--comment", default=None)
@pass_state
@handle_errors
def silence_command(state: State, model: str, rule: str | None, class_: str | None,
                    segment: str | None, segment_value: str | None, until: str | None,
                    duration: str | None, by: str | None, comment: str | None) -> None:
    """Mute notifications of matching alerts for a while (unset matchers match anything)."""
    from monitor.read.alerts import silence

    state.config.model(model)
    if (until is None) == (duration is None):
        raise click.UsageError("give exactly one of --until and --for")
    try:
        end = parse_time(until) if until is not None else now_epoch() + parse_duration(duration or "")
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    with state.engine().begin() as conn:
        try:
            silence_id = silence(conn, model=model, rule=rule, class_=class_, segment=segment,
                                 segment_value=segment_value, until=end,
                                 by=by or getpass.getuser(), comment=comment)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"silence {silence_id} created")


@click.command("silences")
@model_option()
@click.option("--all", "include_expired", is_flag=True, help="Include expired silences.")
@format_option
@pass_state
@handle_errors
def silences_command(state: State, model: str | None, include_expired: bool, fmt: str) -> None:
    """Active silences (all with --all)."""
    from monitor.read.alerts import silences

    with state.engine().begin() as conn:
        emit(silences(conn, model, include_expired=include_expired), fmt)


@click.command("unsilence")
@click.argument("silence_id", type=int)
@pass_state
@handle_errors
def unsilence_command(state: State, silence_id: int) -> None:
    """End a silence now."""
    from monitor.read.alerts import unsilence

    with state.engine().begin() as conn:
        try:
            unsilence(conn, silence_id)
        except LookupError as error:
            raise click.UsageError(str(error)) from None
    click.echo(f"silence {silence_id} ended")


commands = [alerts_command, backtest_command, ack_command, silence_command, silences_command,
            unsilence_command]
