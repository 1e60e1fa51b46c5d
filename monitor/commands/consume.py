"""`monitor consume` (docs/contract.md §3, docs/scaling.md): read a model's predictions and
labels from its stream (`[models.stream]`) until stopped.

Any number of these may run, on any hosts, for the same model: they share the durable consumer
and the broker gives each message to one of them. SIGTERM or SIGINT stops one cleanly: the
batch in hand is committed and acknowledged, then it exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from monitor.cli_common import RunError, State, handle_errors, model_option, pass_state
from monitor.store.db import check_database


@click.command("consume")
@model_option()
@click.option("--max-batches", type=click.IntRange(min=1), default=None,
              help="Stop after this many batches (default: run until stopped).")
@click.option("--until-idle", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop once no message has come for this many seconds.")
@click.option("--quiet", is_flag=True, help="No line per batch (the summary only).")
@pass_state
@handle_errors
def consume_command(state: State, model: str | None, max_batches: int | None, until_idle: float | None,
                    quiet: bool) -> None:
    """Ingest a model's predictions and labels from its message stream ([models.stream])."""
    from monitor.stream.consumer import BatchResult, RunOptions, run
    from monitor.stream.jetstream import JetStreamSource
    from monitor.stream.source import StreamError

    model_config = state.config.model(model)
    if model_config.stream is None:
        raise RunError(f"model {model_config.name!r} has no [models.stream] table in the configuration: "
                       "add one (docs/contract.md) to read it from a stream")
    engine = state.engine()
    check_database(engine)
    source = JetStreamSource(model_config.stream, model_config.name)
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            click.echo(f"{signal.Signals(number).name}: finishing the batch in hand, then stopping", err=True)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}

    def on_batch(result: BatchResult) -> None:
        if not quiet:
            click.echo(f"batch: {result.line()}", err=True)
            sys.stderr.flush()

    click.echo(f"consuming {model_config.name} from stream {source.name} on {model_config.stream.url} "
               f"as {source.consumer}", err=True)
    try:
        totals = run(source, engine, model_config,
                     RunOptions(max_batches=max_batches, until_idle=until_idle, stop=stop, on_batch=on_batch))
    except StreamError as error:
        raise RunError(str(error)) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    click.echo(f"consumed {totals.messages} messages: {totals.predictions} predictions and {totals.labels} labels "
               f"accepted, {totals.skipped} skipped, {totals.rejected} rejected; {totals.seconds:.1f} s in batches, "
               f"{totals.lock_seconds:.1f} s of them waiting for the model's lock")
