"""The global filters (model, window, date range, class, segment) and their URL form.

Pure functions, no Dash: the filter bar's values travel as a `Filters` value, and the page URL
carries them as a query string (`?model=m&window=7d&from=2024-01-01&to=2024-03-31&class=c&segment=region`)
so that a URL can be shared. Unknown or malformed query values are dropped, never trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from urllib.parse import parse_qs, urlencode

from monitor.timeutil import parse_duration

WINDOWS = ("1d", "7d", "30d")
DEFAULT_WINDOW = "7d"
OVERALL = "*"
DAY = 86400
HOUR = 3600
# Without a date range, pages show this many days up to the newest data.
DEFAULT_SPAN_DAYS = 90

_QUERY_KEYS = {"model": "model", "window": "window", "from": "start", "to": "end",
               "class": "cls", "segment": "segment"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Filters:
    """The filter bar's state. `start`/`end` are dates (YYYY-MM-DD, inclusive) or None."""

    model: str | None = None
    window: str = DEFAULT_WINDOW
    start: str | None = None
    end: str | None = None
    cls: str | None = None
    segment: str = OVERALL

    @property
    def window_seconds(self) -> int:
        return parse_duration(self.window if self.window in WINDOWS else DEFAULT_WINDOW)

    @property
    def step_seconds(self) -> int:
        """1 day for windows of a day or more, else 1 hour."""
        return DAY if self.window_seconds >= DAY else HOUR

    def bounds(self) -> tuple[int | None, int | None]:
        """The date range as epoch seconds: [start 00:00 UTC, day after end 00:00 UTC]."""
        return (_date_epoch(self.start), _date_epoch(self.end, plus_days=1))


def from_inputs(model: str | None, window: str | None, start_date: str | None,
                end_date: str | None, cls: str | None, segment: str | None) -> Filters:
    """Filters from the filter bar's component values (any of them may be None)."""
    return Filters(
        model=model or None,
        window=window if window in WINDOWS else DEFAULT_WINDOW,
        start=_clean_date(start_date),
        end=_clean_date(end_date),
        cls=cls or None,
        segment=segment or OVERALL,
    )


def parse_query(search: str | None) -> dict[str, str]:
    """The filter values present in a query string, keyed by Filters field name.

    Only keys that appear are returned (absent keys mean "keep what you have"). Dates must be
    YYYY-MM-DD, the window one of WINDOWS; anything else is dropped.
    """
    if not search:
        return {}
    parsed = parse_qs(search.lstrip("?"), keep_blank_values=False)
    values: dict[str, str] = {}
    for key, field in _QUERY_KEYS.items():
        if key not in parsed:
            continue
        value = parsed[key][-1].strip()
        if field == "window" and value not in WINDOWS:
            continue
        if field in ("start", "end"):
            value = _clean_date(value) or ""
        if value:
            values[field] = value
    return values


def to_query(filters: Filters) -> str:
    """The query string (with its leading '?') that reproduces `filters`."""
    pairs = [("model", filters.model), ("window", filters.window), ("from", filters.start),
             ("to", filters.end), ("class", filters.cls), ("segment", filters.segment)]
    present = [(key, value) for key, value in pairs if value]
    return "?" + urlencode(present) if present else ""


def apply_query(filters: Filters, search: str | None) -> Filters:
    """`filters` with the values found in `search` replacing theirs."""
    return replace(filters, **parse_query(search))


def _clean_date(value: str | None) -> str | None:
    if not value:
        return None
    text = str(value)[:10]
    if not _DATE.match(text):
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        return None
    return text


def _date_epoch(value: str | None, *, plus_days: int = 0) -> int | None:
    if not value:
        return None
    day = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    return int(day.timestamp()) + plus_days * DAY
