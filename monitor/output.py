"""Printing records for the CLI: `--format table|csv|json` (json = a list of records)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO

import numpy as np
import pandas as pd

FORMATS = ("table", "csv", "json")


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records: NaN -> None, numpy scalars -> Python."""
    columns = list(frame.columns)
    return [
        {column: _clean(value) for column, value in zip(columns, row)}
        for row in frame.itertuples(index=False, name=None)
    ]


def emit(frame: pd.DataFrame, fmt: str, *, stream: TextIO | None = None, title: str | None = None) -> None:
    """Write `frame` to stdout in the chosen format."""
    stream = stream or sys.stdout
    if fmt == "json":
        json.dump(to_records(frame), stream, indent=None)
        stream.write("\n")
    elif fmt == "csv":
        frame.to_csv(stream, index=False, lineterminator="\n")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=stream, width=max(120, 14 * len(frame.columns)))
        if frame.empty:
            console.print(Text(f"no records{f' ({title})' if title else ''}"))
            return
        table = Table(title=title, show_lines=False)
        for column in frame.columns:
            table.add_column(str(column), overflow="fold")
        for record in to_records(frame):
            table.add_row(*[Text(_format_cell(v)) for v in record.values()])  # no markup from data
        console.print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
