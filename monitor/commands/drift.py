"""`monitor drift` (docs/contract.md §3): drift per feature against the reference, per window."""

from __future__ import annotations

import click

from monitor.cli_common import (
    format_option,
    handle_errors,
    model_option,
    pass_state,
    window_options,
)
from monitor.output import emit


@click.command("drift")
@model_option()
@window_options
@click.option("--segment", default=None, help="Segment attribute(s), comma-separated; '*' = overall only.")
@click.option("--feature", "features", multiple=True,
              help="Only this feature (repeatable; also __prediction__, __score_<class>__).")
@click.option("--drifted-only", is_flag=True, help="Only records flagged as drifted.")
@format_option
@pass_state
@handle_errors
def drift_command(state, model, window, step, start, end, segment, features, drifted_only, fmt) -> None:  # type: ignore[no-untyped-def]
    """Drift per feature and method against the reference, overall and per segment value."""
    from monitor.read import quality
    from monitor.read.windows import query_spec

    names = [name.strip() for option in features for name in option.split(",") if name.strip()]
    with state.model_context(model) as (conn, ctx):
        try:
            spec = query_spec(ctx.config, window, step, start, end)
            frame = quality.drift(conn, ctx, spec, segment=segment, features=names or None)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if drifted_only:
        frame = frame[frame["drifted"]].reset_index(drop=True)
    emit(frame, fmt, view="drift")
