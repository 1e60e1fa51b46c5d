"""The `monitor` command line (docs/contract.md §3). Thin: parse options, call the engine, print."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from monitor.cli_common import (
    RunError,
    State,
    format_option,
    handle_errors,
    model_option,
    pass_state,
    time_callback,
    window_options,
)
from monitor.output import emit, printable


class PrintableFormatter(logging.Formatter):
    """Log lines for the terminal: a message names files and values from the data, so its
    control characters are shown escaped (a traceback keeps its line breaks)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return printable(super().formatException(ei), keep="\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Path to monitor.toml (default: $MONITOR_CONFIG, else ./monitor.toml).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Monitor classifiers in production: minority-class recall per class and subgroup,
    with delayed labels, intervals, drift, fairness gaps and alerts."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    ctx.obj = State(config_path)


@main.command("init")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing monitor.toml.")
@handle_errors
def init_command(directory: str, force: bool) -> None:
    """Write an example monitor.toml in DIRECTORY and create its database."""
    from monitor.workspace import init_workspace

    path = init_workspace(Path(directory), force=force)
    click.echo(f"wrote {path} and created its database; edit it, then run `monitor ingest`")


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
@handle_errors
def db_upgrade_command(state: State, revision: str) -> None:
    """Apply migrations (Alembic) to the configured database."""
    from monitor.store.migrate import current_revision, upgrade

    engine = state.engine()
    upgrade(engine, revision)
    click.echo(f"database at revision {current_revision(engine)}")


@main.command("ingest")
@model_option()
@click.option("--as-of", "as_of", callback=time_callback,
              help="The clock: later predictions (timestamp) and labels (label_timestamp) stay invisible.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--reread", "reread", multiple=True, metavar="PATTERN",
              help="Read again the files the ledger holds whose path matches PATTERN (a glob; `*` "
                   "crosses directories), even if unchanged: after a config fix or an upgrade that "
                   "reads them better. Rows already stored are not counted twice. Repeatable.")
@pass_state
@handle_errors
def ingest_command(state: State, model: str | None, as_of: int | None, no_progress: bool,
                   reread: tuple[str, ...]) -> None:
    """One scheduler tick: ingest new files, update aggregates, evaluate alerts, notify."""
    from monitor.tick import run_tick

    config = state.config
    if model is not None:
        config.model(model)  # validates the name
    if reread:
        _mark_for_reread(state, [model] if model else [m.name for m in config.models], reread)
    summary = run_tick(state.engine(), config, model=model, as_of=as_of,
                       progress=not no_progress and sys.stderr.isatty())
    for model_summary in summary.models:  # a failed file's name and error are data: one line each
        model_summary.errors = [printable(error) for error in model_summary.errors]
    click.echo(summary.render())


def _mark_for_reread(state: State, models: list[str], patterns: tuple[str, ...]) -> None:
    """`ingest --reread`: mark the matching ledger rows, or refuse a pattern that matches none."""
    from monitor.ingest.reread import mark_for_reread

    with state.engine().begin() as conn:
        marked = mark_for_reread(conn, models, patterns, os.getcwd())
        for mark in marked:
            if not mark.files:  # nothing is marked: the transaction rolls back
                raise click.BadParameter(f"no file in the ledger matches {mark.matched!r} (see `monitor files`)",
                                         param_hint="--reread")
    for mark in marked:
        click.echo(f"{mark.files} file(s) matching {mark.pattern!r} will be read again", err=True)


@main.command("run")
@pass_state
@handle_errors
def run_command(state: State) -> None:
    """Run the scheduler in the foreground (SIGTERM/SIGINT stop it cleanly)."""
    from monitor.scheduler import run_scheduler

    run_scheduler(state.config, config_path=state.config_path)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Dash debug mode (development only).")
@pass_state
@handle_errors
def serve_command(state: State, host: str, port: int, debug: bool) -> None:
    """Serve the dashboard and the HTTP API."""
    from dashboards.app import serve  # the engine never imports dash; the CLI edge may

    serve(state.config, host=host, port=port, debug=debug)


@main.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="demo-workspace",
              show_default=True, help="Where the demo workspace goes.")
@click.option("--port", default=8050, show_default=True, type=int)
@click.option("--days", default=60, show_default=True, type=int, help="Days of simulated history.")
@click.option("--no-serve", is_flag=True, help="Prepare and ingest only; start nothing.")
@handle_errors
def demo_command(directory: str, port: int, days: int, no_serve: bool) -> None:
    """Make demo data, start the scheduler and the dashboard on SQLite, print the URL."""
    from monitor.demo import run_demo

    run_demo(Path(directory), port=port, days=days, serve=not no_serve)


@main.command("metrics")
@model_option()
@window_options
@click.option("--class", "class_", default=None, help="Only this class (comma-separated for several).")
@click.option("--segment", default=None, help="Segment attribute(s), comma-separated; '*' = overall only.")
@format_option
@pass_state
@handle_errors
def metrics_command(state: State, model: str | None, window: int, step: int, start: int | None,
                    end: int | None, class_: str | None, segment: str | None, fmt: str) -> None:
    """Rolling one-vs-rest metrics per class, overall and per segment value."""
    from monitor.read import quality
    from monitor.read.context import option_names
    from monitor.read.windows import query_spec

    with state.model_context(model) as (conn, ctx):
        try:
            spec = query_spec(ctx.config, window, step, start, end)
            frame = quality.metrics(conn, ctx, spec, classes=option_names(class_, ctx.classes), segment=segment)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    estimated = "recall_estimated" in frame and frame["recall_estimated"].notna().any()
    emit(frame, fmt, view="metrics_best" if estimated else "metrics")


@main.command("rejects")
@model_option()
@click.option("--limit", default=1000, show_default=True, type=int)
@format_option
@pass_state
@handle_errors
def rejects_command(state: State, model: str | None, limit: int, fmt: str) -> None:
    """Rejected rows and failed files, with reasons."""
    from monitor.read import ledger

    names = [model] if model else [m.name for m in state.config.models]
    if model:
        state.config.model(model)
    with state.engine().connect() as conn:
        frame = ledger.rejects(conn, names, limit=limit)
    emit(frame, fmt, view="rejects")


@main.command("files")
@model_option()
@format_option
@pass_state
@handle_errors
def files_command(state: State, model: str | None, fmt: str) -> None:
    """The file ledger, newest first: status and row counts of every file read."""
    from monitor.read import ledger

    names = [model] if model else [m.name for m in state.config.models]
    if model:
        state.config.model(model)
    with state.engine().connect() as conn:
        frame = ledger.files(conn, names)
    emit(frame, fmt, view="files")


def _register_domain_commands() -> None:
    from monitor.commands.alerts import commands as alert_commands
    from monitor.commands.drift import drift_command
    from monitor.commands.fairness import fairness_command

    main.add_command(drift_command)
    main.add_command(fairness_command)
    for command in alert_commands:
        main.add_command(command)
    from monitor.retention import retention_command; main.add_command(retention_command)  # noqa: E702, I001
    from monitor.commands.slices import slices_command; main.add_command(slices_command)  # noqa: E702, I001
    from monitor.commands.incidents import incidents_command; main.add_command(incidents_command)  # noqa: E702, I001
    from monitor.commands.consume import consume_command; main.add_command(consume_command)  # noqa: E702, I001
    from monitor.commands.label_shift import label_shift_command; main.add_command(label_shift_command)  # noqa: E702, I001


_register_domain_commands()

__all__ = ["main", "RunError"]


if __name__ == "__main__":  # `python -m monitor.cli` (the demo starts its processes this way)
    main()
