"""`monitor slices` (docs/contract.md §3, docs/incidents.md): the worst slices of one class's
recall over attribute combinations, ranked, in one window."""

from __future__ import annotations

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

DAY = 86400


@click.command("slices")
@model_option()
@click.option("--class", "class_", required=True, help="The class whose recall is searched.")
@click.option("--depth", type=click.IntRange(1, 3), default=2, show_default=True,
              help="Attributes combined at most (1: single values, 2: pairs, 3: triples).")
@click.option("--window", default="7d", show_default=True, callback=duration_callback, help="Window length.")
@click.option("--to", "end", default=None, callback=time_callback,
              help="Window end (default: the newest complete window).")
@click.option("--limit", type=int, default=20, show_default=True, help="At most this many slices after the overall row.")
@format_option
@pass_state
@handle_errors
def slices_command(state: State, model: str | None, class_: str, depth: int, window: int, end: int | None,
                   limit: int, fmt: str) -> None:
    """Worst slices of a class's recall over attribute combinations, ranked by excess false negatives."""
    from monitor.read import quality
    from monitor.read.windows import default_spec

    with state.model_context(model) as (conn, ctx):
        try:
            # ends on a UTC day boundary, never after the newest complete window
            spec = default_spec(conn, ctx, window=window, step=DAY, span_days=0, end=end)
            frame = quality.slices(conn, ctx, cls=class_, end=spec.end if spec else None, window=window,
                                   depth=depth, limit=limit)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    emit(frame, fmt, view="slices")
