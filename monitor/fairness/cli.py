"""`monitor fairness` (CONTRACT §3)."""

from __future__ import annotations

import click

from monitor.cli_common import RunError, format_option, handle_errors, model_option, pass_state, window_options


@click.command("fairness")
@model_option()
@window_options
@click.option("--segment", default=None, help="Segment attribute(s), comma-separated; '*' = overall only.")
@format_option
@pass_state
@handle_errors
def fairness_command(state, model, window, step, start, end, segment, fmt) -> None:  # type: ignore[no-untyped-def]
    """fairness records per window (not implemented yet)."""
    raise RunError("fairness is not implemented yet")
