"""`monitor alerts`, `monitor backtest`, `monitor ack`, `monitor silence`, `monitor silences`,
`monitor unsilence` (docs/contract.md §3 and docs/alerts.md)."""

from __future__ import annotations

import getpass

import click
from sqlalchemy.engine import Connection

from monitor.cli_common import (
    State,
    duration_callback,
    format_option,
    handle_errors,
    model_option,
    pass_state,
    silence_end,
    time_callback,
)
from monitor.config import MonitorConfig
from monitor.output import emit
from monitor.timeutil import format_duration, now_epoch, parse_duration, to_iso


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
        hints = [] if len(frame) else backfill_hints(conn, state.config, model)
    for hint in hints:  # stderr: json and csv on stdout stay clean
        click.echo(hint, err=True)
    emit(frame, fmt, view="alert_series" if series else "alerts")


def backfill_hints(conn: Connection, config: MonitorConfig, model: str | None,
                   now: int | None = None) -> list[str]:
    """Why a model has no alerts when its newest data is older than the rules look back
    (a backfill of old logs): the rules only evaluate window ends from `now - lookback`."""
    from monitor.read.context import stored_context
    from monitor.read.windows import data_span

    now = now if now is not None else now_epoch()
    hints = []
    for model_config in [config.model(model)] if model else config.models:
        ctx = stored_context(conn, model_config)
        found = data_span(conn, ctx) if ctx is not None else None
        # a model without [[models.alerts]] has the default rule, which looks back label_horizon
        rules = [rule for rule in model_config.alerts if rule.enabled] if model_config.alerts else [None]
        if ctx is None or found is None or not rules:
            continue
        lookback = max(parse_duration((rule.lookback if rule else None) or config.retention.label_horizon)
                       for rule in rules)
        newest = found[1] + ctx.bucket
        if newest >= now - lookback:
            continue
        first, last = to_iso(found[0]), to_iso(newest)
        hints.append(
            f"{model_config.name}: no alerts: its newest data ({last}) is older than the alert rules "
            f"look back ({format_duration(lookback)} before now), so no window of it was evaluated. "
            f"Replay the period with `monitor backtest --model {model_config.name} --from {first} "
            f"--to {last}`, or evaluate at the data's end with `monitor ingest --as-of {last}`.")
    return hints


@click.command("backtest")
@click.option("--model", "model", required=True, help="Model name.")
@click.option("--from", "start", required=True, callback=time_callback, help="First clock value (ISO 8601 or epoch s).")
@click.option("--to", "end", required=True, callback=time_callback, help="Last clock value.")
@click.option("--step", default="1d", show_default=True, callback=duration_callback, help="Clock step between ticks.")
@click.option("--db", "db_url", default=None, help="Database for the replay (default: a new SQLite file in a temp folder).")
@click.option("--incidents", "show_incidents", is_flag=True,
              help="Print the incident records of the replay instead of its alerts.")
@format_option
@pass_state
@handle_errors
def backtest_command(state: State, model: str, start: int, end: int, step: int, db_url: str | None,
                     show_incidents: bool, fmt: str) -> None:
    """Replay history in time order into a separate database and print the alert timeline
    (or, with --incidents, the incidents the alerts were grouped into)."""
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
    click.echo(f"{result.ticks} ticks, {len(result.timeline)} alerts, {len(result.incidents)} incidents", err=True)
    if show_incidents:
        emit(result.incidents, fmt, view="incidents")
    else:
        emit(result.timeline, fmt, view="backtest_timeline")


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
    end = silence_end(until, duration)
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
        emit(silences(conn, model, include_expired=include_expired), fmt, view="silences")


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
