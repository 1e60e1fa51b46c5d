"""`monitor alerts` and `monitor backtest` (CONTRACT §3)."""

from __future__ import annotations

import click

from monitor.cli_common import RunError, handle_errors, pass_state


@click.command("alerts")
@pass_state
@handle_errors
def alerts_command(state) -> None:  # type: ignore[no-untyped-def]
    """Alert history (not implemented yet)."""
    raise RunError("alerts is not implemented yet")


@click.command("backtest")
@pass_state
@handle_errors
def backtest_command(state) -> None:  # type: ignore[no-untyped-def]
    """Replay history (not implemented yet)."""
    raise RunError("backtest is not implemented yet")


commands = [alerts_command, backtest_command]
