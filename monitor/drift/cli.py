"""`monitor drift` (CONTRACT §3)."""

from __future__ import annotations

import click

from monitor.cli_common import RunError, format_option, handle_errors, model_option, pass_state, window_options


@click.command("drift")
@model_option()
@window_options
@click.option("--segment", default=None, help="Segment attribute(s), comma-separated; '*' = overall only.")
@format_option
@pass_state
@handle_errors
def drift_command(state, model, window, step, start, end, segment, fmt) -> None:  # type: ignore[no-untyped-def]
    """drift records per window (not implemented yet)."""
    raise RunError("drift is not implemented yet")
