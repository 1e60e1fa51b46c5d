"""Time handling: durations, parsing of user timestamps, UTC boundaries.

All data time inside the engine is integer epoch seconds (UTC). ISO 8601 strings appear only
at the edges (input files, CLI options, output records).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | int) -> int:
    """`"90s"`, `"15m"`, `"1h"`, `"7d"`, `"2w"` -> seconds. Raises ValueError naming the text."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"duration must be positive, got {text}")
        return text
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. '1h', '7d')"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return seconds


def format_duration(seconds: int) -> str:
    """Inverse of parse_duration for whole units: 604800 -> '7d'."""
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0 and unit != "w":
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


EARLIEST_EPOCH = -62_135_596_800  # 0001-01-01T00:00:00Z
LATEST_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z


def parse_time(text: str | int | float | datetime) -> int:
    """A user-supplied time (ISO 8601, naive = UTC, or epoch seconds) -> epoch seconds, in
    the years 1 to 9999 (ValueError otherwise: no later date arithmetic can overflow)."""
    value = _parse_time(text)
    if not EARLIEST_EPOCH <= value <= LATEST_EPOCH:
        raise ValueError(f"time {text!r} is outside the years 1 to 9999")
    return value


def _parse_time(text: str | int | float | datetime) -> int:
    if isinstance(text, datetime):
        value = text if text.tzinfo else text.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text != text or text in (float("inf"), float("-inf")):
            raise ValueError(f"invalid time {text!r}")
        return int(text)
    raw = str(text).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", raw):
        return int(raw) if "." not in raw else int(float(raw))
    try:
        stamp = pd.Timestamp(raw)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"invalid time {text!r}: use ISO 8601 (2024-01-31T12:00:00Z) or epoch seconds") from exc
    if stamp is pd.NaT:
        raise ValueError(f"invalid time {text!r}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp())


def to_iso(epoch: int | float | None) -> str | None:
    """Epoch seconds -> '2024-01-31T12:00:00Z' (None stays None)."""
    if epoch is None or (isinstance(epoch, float) and np.isnan(epoch)):
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_series(epochs: pd.Series) -> pd.Series:
    """Vectorised to_iso for a Series of epoch seconds."""
    return pd.to_datetime(epochs.astype("int64"), unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_to(epoch: int, step: int) -> int:
    """Largest multiple of `step` (UTC boundary) that is <= epoch."""
    return epoch - (epoch % step)


def ceil_to(epoch: int, step: int) -> int:
    return -((-epoch) // step) * step


def now_epoch() -> int:
    return int(datetime.now(tz=timezone.utc).timestamp())



def iso_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    """Epoch-second columns of `frame` (None where missing) as ISO strings, in place."""
    for column in columns:
        values = frame[column]
        mask = values.notna()
        out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if mask.any():
            out[mask] = iso_series(values[mask].astype("int64")).to_numpy()
        frame[column] = out
