"""`[limits]` and `[models.limits]`: how large or odd an input may be (docs/deployment.md)."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, field_validator

from monitor.settings.base import Strict, check_duration
from monitor.timeutil import parse_duration, parse_time


class Limits(Strict):
    """`[limits]` (every model) and `[models.limits]` (one model, overriding the global one key
    by key): what one row, request or value may be, so that no input can blind the monitor.
    docs/deployment.md ("Limits and hostile input") lists each with its reason."""

    # timestamps outside [earliest_timestamp, clock + max_future] are rejected row by row
    earliest_timestamp: str = "2000-01-01T00:00:00Z"
    max_future: str = "1d"
    # "auto": a number of 1e11 or more is epoch milliseconds (1e11 s is the year 5138);
    # "seconds": numbers are always epoch seconds (so milliseconds fall out of range)
    epoch_units: Literal["auto", "seconds"] = "auto"
    # ids, classes and versions are stored in 200-character columns: at most 200
    max_id_length: int = Field(default=200, ge=1, le=200)
    max_value_length: int = Field(default=200, ge=1, le=200)  # classes, segments, version
    max_fields: int = Field(default=1000, ge=1, le=1_000_000)  # fields (keys) of one record
    max_record_bytes: int = Field(default=1_000_000, ge=1_000, le=1_000_000_000)
    max_segment_values: int = Field(default=500, ge=1, le=1_000_000)  # per attribute
    # read side: what one request may ask for (see monitor.store.windows)
    max_window_ends: int = Field(default=20_000, ge=1)
    max_metrics_series: int = Field(default=10_000, ge=1)

    _check_future = field_validator("max_future")(check_duration)

    @field_validator("earliest_timestamp")
    @classmethod
    def _check_earliest(cls, value: str) -> str:
        parse_time(value)
        return value

    @property
    def earliest_epoch(self) -> int:
        return _epoch(self.earliest_timestamp)

    @property
    def max_future_seconds(self) -> int:
        return _seconds(self.max_future)


# read for every HTTP write: parsed once per text (parsing a time is a pandas call)
@functools.lru_cache(maxsize=256)
def _epoch(text: str) -> int:
    return parse_time(text)


@functools.lru_cache(maxsize=256)
def _seconds(text: str) -> int:
    return parse_duration(text)
