"""Printing records for the CLI: `--format table|csv|json` (json = a list of records).

json and csv always carry every field of the record (docs/contract.md). Only the table is
for a human at a terminal: it shows a short default set of columns per record (`VIEWS`),
the ones chosen with `--columns a,b,c`, or all with `--wide`; it fits the terminal's width,
long text (messages, reasons) is cut with an ellipsis, and midnight times print as dates.

Values come from production data and may hold any character but NUL. json and csv keep them
exact; the table shows a value holding a character a terminal would act on or hide (escape
sequences, carriage return, backspace, bell, a right-to-left override, a line separator)
quoted with backslash escapes (`shown`), so that no value can drive the terminal or pass for
another.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np
import pandas as pd

FORMATS = ("table", "csv", "json")

# The columns a table shows by default, per record (docs/contract.md §3), most telling first:
# a terminal too narrow for all of them loses the last ones (a caption says so) rather than
# cutting numbers. `model` is added in front when the records hold more than one model;
# `slice` is segment=segment_value.
VIEWS: dict[str, tuple[str, ...]] = {
    "slices": ("rank", "slice", "depth", "status", "support", "recall", "recall_low", "recall_high",
               "reference_recall", "excess_fn", "share", "explained_by"),
    "metrics": ("end", "class", "slice", "recall", "recall_low", "recall_high", "support",
                "provisional", "precision"),
    # `monitor metrics` when the model logs scores: the current best recall (realized counts plus
    # the estimate of the unlabelled part) first, the realized and the estimated recall beside it
    "metrics_best": ("end", "class", "slice", "recall_best", "recall_best_low", "recall_best_high", "recall",
                     "recall_estimated", "support", "provisional", "recall_low", "recall_high", "precision"),
    "drift": ("end", "feature", "slice", "method", "value", "threshold", "drifted"),
    # `disagree`: a table-only short form of label_shift_warning (the sentence cut at 100
    # columns read "the prevalence …"); --wide or --columns shows the whole warning
    "label_shift": ("end", "class", "slice", "prevalence_bbse", "prevalence_bbse_se", "prevalence_cbpe",
                    "precision_bbse", "precision_cbpe", "n_predictions", "disagree"),
    "fairness": ("end", "class", "attribute", "group", "metric", "flagged", "value", "low", "high",
                 "ratio", "support"),
    "fairness_gaps": ("end", "class", "attribute", "metric", "flagged", "ratio", "ratio_low",
                      "ratio_high", "group_min", "value_min", "group_max", "value_max"),
    "alerts": ("id", "state", "severity", "class", "slice", "value", "reference_value",
               "started_at", "support", "message"),
    "alert_series": ("rule", "class", "slice", "status", "streak", "last_end", "last_value",
                     "last_support", "alert_id"),
    "backtest_timeline": ("id", "state", "severity", "class", "slice", "started_at", "fired_at",
                          "resolved_at", "value"),
    # no message: at 100 columns it cut the cause slice to "region…" (--wide or --columns shows it)
    "incidents": ("id", "state", "severity", "class", "slice", "n_alerts", "fired_at", "resolved_at", "value",
                  "support"),
    "silences": ("id", "rule", "class", "segment", "segment_value", "ends_at", "created_by",
                 "comment"),
    "rejects": ("kind", "source", "row", "field", "reason"),
    "files": ("kind", "path", "status", "rows_read", "rows_accepted", "rows_rejected",
              "rows_skipped", "rows_waiting", "ingested_at", "error"),
}
# Free text: cut to one line with an ellipsis instead of wrapping the whole table.
TEXT_COLUMNS = frozenset({"message", "reason", "error", "comment", "raw", "fingerprint", "source", "path",
                          "label_shift_warning", "estimation_warning"})
LEFT_CUT = frozenset({"path", "source"})  # a file's name is at its end: cut on the left
MIDNIGHT = "T00:00:00Z"
GAP = 2  # characters between two columns of a table


class OutputFormat(str):
    """The `--format` value (compares equal to "table", "csv", "json") with the table's
    column choice: `columns` (names, in order) or `wide` (every column)."""

    columns: tuple[str, ...] | None
    wide: bool

    def __new__(cls, kind: str, columns: Sequence[str] | None = None, wide: bool = False) -> OutputFormat:
        value = super().__new__(cls, kind)
        value.columns = tuple(columns) if columns else None
        value.wide = wide
        return value


class ColumnError(ValueError):
    """--columns names a column the records do not have (a usage error)."""


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


def emit(frame: pd.DataFrame, fmt: str, *, stream: TextIO | None = None, title: str | None = None,
         view: str | None = None) -> None:
    """Write `frame` to stdout in the chosen format; `view` names the record (VIEWS) whose
    default columns a table shows."""
    stream = stream or sys.stdout
    if fmt == "json":
        json.dump(to_records(frame), stream, indent=None)
        stream.write("\n")
    elif fmt == "csv":
        write_csv(_json_lists(frame), stream)
    elif fmt == "table":
        frame = with_slice(frame)
        columns = table_columns(frame, view, getattr(fmt, "columns", None), getattr(fmt, "wide", False))
        wide = getattr(fmt, "wide", False)  # --wide: every column in full (for `less -S`)
        default = not wide and not getattr(fmt, "columns", None)
        print_table(frame[columns], stream=stream, title=title, fit=not wide, drop=default)
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


# A record's end in csv text written with "\r\n" line ends: a quoted field (kept whole, line
# ends inside it are data) or a bare "\r\n" (with minimal quoting no unquoted field holds `"`).
_QUOTED_OR_RECORD_END = re.compile(r'("(?:[^"]|"")*")|\r\n')


def write_csv(frame: pd.DataFrame, stream: TextIO) -> None:
    r"""`frame` as csv with "\n" line ends. Python's csv writer quotes a field only for the
    characters of its line end, so with "\n" a value holding a bare "\r" went out unquoted and
    every csv reader cut the record there; such a frame is written with "\r\n" (quoting every
    field with a line end in it) and its record ends turned back into "\n"."""
    text = frame.to_csv(index=False, lineterminator="\n")
    if "\r" in text:
        text = _QUOTED_OR_RECORD_END.sub(lambda match: match.group(1) or "\n",
                                         frame.to_csv(index=False, lineterminator="\r\n"))
    stream.write(text)


def _json_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """List cells (`strings` fields: an incident's explains, evidence) as JSON text, which any
    CSV reader can parse, instead of a Python repr."""
    lists = [c for c in frame.columns if frame[c].dtype == object
             and frame[c].map(lambda v: isinstance(v, (list, tuple))).any()]
    if not lists:
        return frame
    frame = frame.copy()
    for column in lists:
        frame[column] = frame[column].map(lambda v: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v)
    return frame


def with_slice(frame: pd.DataFrame) -> pd.DataFrame:
    """The table's `slice` column, `segment=segment_value` (`*` overall), in one column
    instead of two; shown by default, never written to json or csv, left out by --wide."""
    if not {"segment", "segment_value"} <= set(frame.columns) or "slice" in frame.columns:
        return frame
    segment, value = frame["segment"].astype(str), frame["segment_value"].astype(str)
    return frame.assign(slice=(segment + "=" + value).where(segment != "*", "*"))


def table_columns(frame: pd.DataFrame, view: str | None, chosen: Sequence[str] | None = None,
                  wide: bool = False) -> list[str]:
    """The columns a table shows. ValueError names an unknown chosen column and the known ones."""
    available = [str(column) for column in frame.columns]
    if chosen:
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise ColumnError(f"unknown column(s) {', '.join(unknown)} for --columns: choose from "
                             f"{', '.join(available)}")
        return list(dict.fromkeys(chosen))
    if wide or view not in VIEWS:
        return [name for name in available if name != "slice"]
    columns = [name for name in VIEWS[view] if name in available]
    if "model" in available and frame["model"].nunique() > 1:
        columns.insert(0, "model")
    return columns or available


def print_table(frame: pd.DataFrame, *, stream: TextIO, title: str | None = None, fit: bool = True,
                drop: bool = False) -> None:
    """A rich table as wide as the terminal (`$COLUMNS`, else the terminal, else 100), or
    as wide as its cells when not `fit`; with `drop`, the last columns are left out when the
    others would not fit without cutting numbers."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = max(shutil.get_terminal_size((100, 24)).columns, 40)
    console = Console(file=stream, width=width, highlight=False)
    if frame.empty:
        console.print(Text(f"no records{f' ({title})' if title else ''}"))
        return
    headers = [str(column) for column in frame.columns]
    rows = [[format_cell(value) for value in record.values()] for record in to_records(frame)]
    hidden = 0
    while drop and fit and len(headers) > 2 and \
            sum(narrowest_widths(headers, rows)) + GAP * (len(headers) - 1) > width:
        headers, rows, hidden = headers[:-1], [row[:-1] for row in rows], hidden + 1
    if hidden:
        more = ", ".join(str(column) for column in frame.columns[len(headers):])
        title = f"{title + ' - ' if title else ''}not shown: {more} (--wide, or --columns to choose)"
    widths = fit_widths(headers, rows, width - GAP * (len(headers) - 1) if fit else 10**6)
    console.width = max(width, sum(widths) + GAP * len(widths))
    table = Table(caption=title if hidden else None, title=None if hidden else title,
                  caption_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                  pad_edge=False, show_edge=False)
    for header, column_width in zip(headers, widths):
        label = header if len(header) <= column_width else _broken(header, column_width)
        table.add_column(Text(label), width=column_width, no_wrap=True, overflow="ellipsis")
    for row in rows:
        cells = [_left_cut(cell, w) if header in LEFT_CUT else cell
                 for header, cell, w in zip(headers, row, widths)]
        table.add_row(*[Text(cell) for cell in cells])  # Text: no markup from data
    console.print(table)


def fit_widths(headers: Sequence[str], rows: Sequence[Sequence[str]], room: int) -> list[int]:
    """Column widths that fit `room` characters. Each column starts as wide as its widest
    cell and its header; when that is too wide, headers break at "_", then free text is cut
    (to 16), then names and labels (to 6), then headers wider than their numbers or times,
    and only then anything (to 4)."""
    cells = [[row[i] for row in rows] for i in range(len(headers))]
    widths = [max(len(header), *map(len, column)) for header, column in zip(headers, cells)]
    if sum(widths) <= room:
        return widths
    widths = [max(min(max(map(len, header.split("_"))), 8), *map(len, column), 1)
              for header, column in zip(headers, cells)]
    rank = [0 if header in TEXT_COLUMNS else 2 if all(map(_is_number_or_time, column)) else 1
            for header, column in zip(headers, cells)]
    whole = [max(max(map(len, column)), 4) for column in cells]  # numbers and times uncut
    for floors in ((16, 99, 99), (16, 6, 99), (16, 6, 0), (4, 4, 4)):  # 0: the cells' width
        floor_of = [floors[rank[i]] or whole[i] for i in range(len(headers))]
        while sum(widths) > room:
            candidates = [i for i, w in enumerate(widths) if w > floor_of[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= max(1, min(sum(widths) - room, widths[widest] - floor_of[widest]) // 2)
    for i in sorted(range(len(headers)), key=lambda i: len(headers[i]) - widths[i]):
        need = len(headers[i]) - widths[i]  # room left over: whole headers again, shortest first
        if 0 < need <= room - sum(widths):
            widths[i] += need
    return widths


def narrowest_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """The narrowest each column gets before numbers and times are cut: text 16, labels 6."""
    widths = []
    for i, header in enumerate(headers):
        column = [row[i] for row in rows]
        natural = max(map(len, column), default=1)
        if header in TEXT_COLUMNS:
            widths.append(min(natural, 16))
        elif all(map(_is_number_or_time, column)):
            widths.append(max(natural, 4))
        else:
            widths.append(min(natural, 6))
    return widths


def _left_cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else "…" + cell[len(cell) - width + 1:]


def _broken(header: str, width: int) -> str:
    """A header wider than its column, one line per "_"-part (segment_ / value), the "_"
    kept where it fits."""
    parts = header.split("_")
    lines = [part + "_" if len(part) < width else part for part in parts[:-1]]
    return "\n".join([*lines, parts[-1]])


def _is_number_or_time(cell: str) -> bool:
    if cell == "-" or cell[:4].isdigit() and cell[4:5] == "-":
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def format_cell(value: Any) -> str:
    """A value as a table shows it: floats to 3 significant digits, whole floats (ids read
    as floats beside missing values) as integers, midnight times as dates."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, str) and len(value) == 20 and value.endswith("Z") and value[10] == "T":
        return value[:10] if value.endswith(MIDNIGHT) else f"{value[:10]} {value[11:16]}"
    if isinstance(value, (list, tuple)):  # an incident's explains / evidence: items, not a repr
        return ", ".join(format_cell(item) for item in value) or "-"
    return shown(str(value))


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """`text` as a table cell: itself when every character is printable (Python's
    `str.isprintable`: no control, format or separator character but the space) and it does
    not start with a double quote; else in double quotes with backslash escapes (`\\x1b`,
    `\\r`, `\\u202e`, and `\\\\`, `\\"`), as git quotes an unusual file name. Rich drops some
    controls and passes escape sequences to the terminal, which would let a segment value
    clear the screen, plant a link, recolour or reverse a row, or look like another value."""
    if text.isprintable() and not text.startswith('"'):
        return text
    return '"' + "".join("\\" + character if character in '\\"' else character if character.isprintable()
                         else _code(character) for character in text) + '"'


def printable(text: str, keep: str = "") -> str:
    """`text` for a terminal line (a message, a log line): every character that is not
    printable, but those in `keep`, as a backslash escape; the rest unchanged."""
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() or character in keep else _code(character)
                   for character in text)


def _code(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
