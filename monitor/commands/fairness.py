"""`monitor fairness` (docs/contract.md §3): gaps between subgroups per window."""

from __future__ import annotations

import click

from monitor.cli_common import (
    State,
    format_option,
    handle_errors,
    model_option,
    pass_state,
    window_options,
)
from monitor.output import emit


@click.command("fairness")
@model_option()
@window_options
@click.option("--class", "class_", default=None, help="Only this class (comma-separated for several).")
@click.option("--attribute", "--segment", "attribute", default=None,
              help="Segment attribute(s) to compare groups within, comma-separated "
                   "(an intersection as 'a&b'); default: every configured one.")
@click.option("--metric", default=None,
              help="tpr, fpr, precision, selection_rate (comma-separated); default: all.")
@click.option("--flagged", "flagged_only", is_flag=True, help="Only the flagged records.")
@click.option("--largest", is_flag=True,
              help="The largest gap per attribute (max - min, min / max) instead of every group.")
@format_option
@pass_state
@handle_errors
def fairness_command(state: State, model: str | None, window: int, step: int, start: int | None,
                     end: int | None, class_: str | None, attribute: str | None,
                     metric: str | None, flagged_only: bool, largest: bool, fmt: str) -> None:
    """Per-group tpr, fpr, precision and selection rate per window, with 95% intervals,
    difference and ratio to the reference group, and flags for real disparities."""
    from monitor.read import quality
    from monitor.read.context import option_names
    from monitor.read.windows import query_spec

    with state.model_context(model) as (conn, ctx):
        try:
            spec = query_spec(ctx.config, window, step, start, end)
            read = quality.largest_gaps if largest else quality.fairness
            frame = read(conn, ctx, spec, classes=option_names(class_, ctx.classes), attribute=attribute,
                         metric=metric)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if flagged_only:
        frame = frame.loc[frame["flagged"].astype(bool)]
    emit(frame, fmt, view="fairness_gaps" if largest else "fairness")
