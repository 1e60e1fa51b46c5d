"""Plumbing shared by every `monitor` command: config loading, exit codes, options.

Exit codes (docs/contract.md §3): 0 done; 2 bad usage or config (click.UsageError / ConfigError);
1 could not run (DatabaseError or any other failure), one line, no traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from monitor.config import ConfigError, MonitorConfig, load_config
from monitor.context import ModelContext
from monitor.output import FORMATS, ColumnError, OutputFormat, printable
from monitor.store.db import (
    NOT_MIGRATED,
    DatabaseError,
    check_database,
    is_missing_table,
    make_engine,
)
from monitor.store.windows import WindowLimitError
from monitor.timeutil import now_epoch, parse_duration, parse_time

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("monitor")


class RunError(click.ClickException):
    """Could not run: exit code 1 with a one-line reason."""

    exit_code = 1


class ConfigProblem(click.ClickException):
    """A bad monitor.toml: exit code 2 like a usage error, but without click's usage
    banner (the command line was fine; the file names the problem)."""

    exit_code = 2


class State:
    """Lazily loaded config and engine for one CLI invocation."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: MonitorConfig | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> MonitorConfig:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as error:
                raise ConfigProblem(str(error)) from None
        return self._config

    def engine(self, url: str | None = None) -> Engine:
        if url is not None:
            engine = make_engine(url)
            check_database(engine)
            return engine
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
            check_database(self._engine)
        return self._engine

    @contextmanager
    def model_context(self, model: str | None) -> Iterator[tuple[Connection, ModelContext]]:
        """A read transaction and the context of `model` (the only model when None); a
        model never ingested reads as empty (nothing is written)."""
        from monitor.read.context import model_context

        try:
            model_config = self.config.model(model)
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        with self.engine().begin() as conn:
            yield conn, model_context(conn, model_config)


pass_state = click.make_pass_decorator(State)


def handle_errors(func: F) -> F:
    """Turn our exceptions into the contract's exit codes and one-line messages."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except ConfigError as error:
            raise ConfigProblem(str(error)) from None
        except DatabaseError as error:
            raise RunError(str(error)) from None
        except BrokenPipeError:  # `monitor metrics | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except ColumnError as error:  # --columns names a column the records lack
            raise click.UsageError(str(error)) from None
        except WindowLimitError as error:  # a window, step or range no read may ask for
            raise click.UsageError(str(error)) from None
        except Exception as error:  # noqa: BLE001 - the contract wants one line, no traceback
            if is_missing_table(error):
                raise RunError(NOT_MIGRATED) from None
            log.debug("command failed", exc_info=True)
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RunError(printable(f"{type(error).__name__}: {message}")) from None  # may quote data

    return wrapper  # type: ignore[return-value]


def format_option(func: F) -> F:
    """--format, --columns, --wide: handed to the command as one `fmt` (an OutputFormat,
    equal to "table", "csv" or "json"); --columns and --wide only change the table."""

    @functools.wraps(func)
    def wrapper(*args: Any, fmt: str, columns: str | None, wide: bool, **kwargs: Any) -> Any:
        chosen = [name.strip() for name in columns.split(",") if name.strip()] if columns else None
        return func(*args, fmt=OutputFormat(fmt, chosen, wide), **kwargs)

    decorated: Any = wrapper
    decorated = click.option("--wide", is_flag=True, help="Table: every column.")(decorated)
    decorated = click.option("--columns", default=None, metavar="A,B,...",
                             help="Table: these columns, in this order.")(decorated)
    decorated = click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="Output format (json = a list of records, csv = every field; table = the main columns).",
    )(decorated)
    return decorated  # type: ignore[no-any-return]


def model_option(required: bool = False) -> Callable[[F], F]:
    return click.option("--model", "model", required=required, help="Model name (default: the only model).")


def window_options(func: F) -> F:
    """--window, --step, --from, --to: parsed into seconds / epoch seconds."""
    func = click.option("--to", "end", callback=_time_callback, help="Last window end (ISO 8601 or epoch s).")(func)
    func = click.option("--from", "start", callback=_time_callback, help="First window end (ISO 8601 or epoch s).")(func)
    func = click.option("--step", default="1d", show_default=True, callback=_duration_callback, help="Distance between window ends.")(func)
    func = click.option("--window", default="7d", show_default=True, callback=_duration_callback, help="Window length.")(func)
    return func


def silence_end(until: str | None, duration: str | None) -> int:
    """The end of a silence from `--until` (a time) or `--for` (a duration from now): exactly one."""
    if (until is None) == (duration is None):
        raise click.UsageError("give exactly one of --until and --for")
    try:
        return parse_time(until) if until is not None else now_epoch() + parse_duration(duration or "")
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _duration_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None


def _time_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None


duration_callback = _duration_callback
time_callback = _time_callback
