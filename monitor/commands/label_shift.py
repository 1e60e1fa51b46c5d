"""`monitor label-shift` (docs/contract.md §3): class prevalence and precision from the
predicted-class mix (black-box shift estimation) beside the score-based estimate (CBPE), with
a warning where the two disagree (docs/estimation.md)."""

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


@click.command("label-shift")
@model_option()
@window_options
@click.option("--class", "class_", default=None, help="Only this class (comma-separated for several).")
@click.option("--segment", default=None, help="Segment attribute(s), comma-separated; '*' = overall only.")
@click.option("--disagree-only", is_flag=True, help="Only records where BBSE and CBPE disagree (a warning).")
@format_option
@pass_state
@handle_errors
def label_shift_command(state, model, window, step, start, end, class_, segment, disagree_only, fmt) -> None:  # type: ignore[no-untyped-def]
    """Class prevalence and precision under label shift (BBSE) beside CBPE's, per window,
    overall and per segment value; label_shift_warning says where they disagree."""
    from monitor.read import quality
    from monitor.read.context import option_names
    from monitor.read.windows import query_spec

    with state.model_context(model) as (conn, ctx):
        try:
            spec = query_spec(ctx.config, window, step, start, end)
            frame = quality.label_shift(conn, ctx, spec, segment=segment, classes=option_names(class_, ctx.classes))
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    if disagree_only:
        frame = frame[frame["label_shift_warning"].notna()].reset_index(drop=True)
    if fmt == "table":
        frame = frame.assign(disagree=[_short(w) for w in frame["label_shift_warning"]])
    emit(frame, fmt, view="label_shift")


def _short(warning: object) -> str:
    """The table's `disagree` cell: 'BBSE fails' (no class mix explains the predicted mix),
    'yes' (the two estimates disagree), '-' (they agree or cannot be compared)."""
    if not isinstance(warning, str):
        return "-"
    return "BBSE fails" if "BBSE does not hold" in warning else "yes"
