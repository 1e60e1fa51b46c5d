"""Row validation: raw records -> canonical columns + rejects with (row, field, reason).

Vectorised: each rule is a boolean mask over the batch; a row is rejected for the first rule
it breaks, and every other row goes on (docs/contract.md §1, docs/design.md principle 8).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from monitor.config import Limits
from monitor.context import ModelContext
from monitor.timeutil import now_epoch

MISSING_SEGMENT = "(missing)"
REJECT_COLUMNS = ["row_number", "field", "reason", "raw"]
# a reader's text of each record as written (JSON lines: the line, bytes): a reject shows it,
# not only the fields kept; no other rule reads it
RAW_COLUMN = "_raw"


@dataclass
class Validated:
    rows: pd.DataFrame  # canonical columns, good rows only
    rejects: pd.DataFrame  # REJECT_COLUMNS
    positions: np.ndarray | None = None  # the position in the input of every reject's row


class _Rejector:
    """Collects rejects: the first failing rule of a row wins."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.bad = np.zeros(len(frame), dtype=bool)
        self.parts: list[pd.DataFrame] = []
        self.positions: list[np.ndarray] = []

    def reject(self, mask: np.ndarray | pd.Series, field: str,
               reason: str | pd.Series | Callable[[np.ndarray], np.ndarray]) -> None:
        """`reason`: one text, a Series of texts, or a function of the rejected rows' mask
        giving their texts (so that texts are only built for the rows rejected)."""
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if not mask.any():
            return
        self.bad |= mask
        self.positions.append(np.flatnonzero(mask))
        picked = self.frame.loc[mask]
        reasons: np.ndarray | pd.Series | str
        if callable(reason):
            reasons = reason(mask)
        else:
            reasons = reason[mask] if isinstance(reason, pd.Series) else reason
        self.parts.append(
            pd.DataFrame(
                {
                    "row_number": picked["_row"].to_numpy(),
                    "field": field,
                    "reason": reasons if isinstance(reasons, str) else np.asarray(reasons),
                    "raw": _raw_json(picked),
                }
            )
        )

    def where(self) -> np.ndarray:
        """Positions of the rejects of `result()`, in its order."""
        return np.concatenate(self.positions) if self.positions else np.zeros(0, dtype=np.int64)

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=REJECT_COLUMNS)
        return pd.concat(self.parts, ignore_index=True)


def _raw_json(frame: pd.DataFrame) -> list[str]:
    texts = frame[RAW_COLUMN].tolist() if RAW_COLUMN in frame.columns else []
    if texts and all(type(text) is bytes for text in texts):
        return [text[:2000].decode("utf-8", "replace").replace("\x00", "\\x00") for text in texts]
    columns = [c for c in frame.columns if c not in ("_row", RAW_COLUMN)]
    records = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [json.dumps(dict(zip(columns, row)), default=str)[:2000] for row in records.itertuples(index=False, name=None)]


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column as stripped text: an object array of str, None where missing (absent
    column: all missing). The same texts as `astype("string").str.strip()`; plain Python for
    the usual column of ASCII str/missing values (pandas' fixed cost per operation dominated
    small batches), pandas for anything else."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    series = frame[column]
    values = series.to_numpy()
    if values.dtype == object and _plain_text(values):
        out = np.empty(len(values), dtype=object)
        try:  # the usual column: every value a str
            out[:] = list(map(str.strip, values))
        except TypeError:
            out[:] = [v.strip() if type(v) is str else None for v in values]
        return out
    text = series.astype("string").str.strip()
    return text.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]


_MISSING_TYPES = (type(None), type(pd.NA))


def _plain_text(values: np.ndarray) -> bool:
    """Only str (all ASCII) and missing values (None, NA, float NaN) in an object array."""
    try:  # the usual column: every value a str
        return "".join(values).isascii()
    except TypeError:
        pass
    types = set(map(type, values))
    if not types <= {str, float, *_MISSING_TYPES}:
        return False
    if float in types and not all(v != v for v in values if type(v) is float):
        return False
    return "".join([v for v in values if type(v) is str]).isascii()


_NONE = np.array(None, dtype=object)  # compared element by element: `values == None`


def _blank(values: np.ndarray) -> np.ndarray:
    """Missing or empty text (of `_text`'s str and None values)."""
    return np.equal(values, "") | np.equal(values, _NONE)


def _unknown_class(values: np.ndarray, classes: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Reasons `unknown class 'x' (known: ...)`, built only for the rows rejected."""
    known = f" (known: {', '.join(classes)})"

    def reasons(mask: np.ndarray) -> np.ndarray:
        return np.asarray(["unknown class " + repr("" if v is None else v) + known for v in values[mask]],
                          dtype=object)

    return reasons


def _unknown(values: np.ndarray, classes: list[str]) -> np.ndarray:
    """Present text that is not one of `classes` (of `_text`'s str and None values)."""
    if len(classes) > 16:
        known = set(classes)
        return np.fromiter((v is not None and v not in known for v in values), dtype=bool, count=len(values))
    unknown = ~np.equal(values, _NONE)
    for cls in classes:
        unknown &= ~np.equal(values, cls)
    return unknown


def _numbers(text: pd.Series) -> pd.Series:
    """`pd.to_numeric(text, errors="coerce")` as float64, parsing only the texts that can be
    numbers: a text with a ':' (every ISO time) never is one, so it is NaN without a try."""
    timelike = text.str.contains(":", regex=False).to_numpy(dtype=bool, na_value=False)
    if not timelike.any():
        return pd.to_numeric(text, errors="coerce").astype("float64")
    numbers = np.full(len(text), np.nan)
    if not timelike.all():
        rest = ~timelike
        numbers[rest] = pd.to_numeric(text[rest], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.Series(numbers, index=text.index)


UNPARSABLE_TIME = "unparsable timestamp (use ISO 8601 or epoch seconds)"
# a number this large is no epoch second of this era (1e11 s is the year 5138): read as
# milliseconds when `limits.epoch_units = "auto"`
MILLISECONDS_FROM = 1e11
# texts whose year lies outside these are out of range before pandas parses them (pandas
# would overflow its nanosecond arithmetic on some of them)
_YEAR = re.compile(r"^\s*([+-]?\d+)-")


def _datetime_seconds(stamps: pd.Series) -> np.ndarray:
    """Epoch seconds (float, NaN for NaT) of a datetime Series of any resolution, without
    nanosecond arithmetic (a year 9999 is legal in a datetime64[us] column)."""
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    raw = stamps.to_numpy().astype("datetime64[s]")
    seconds = raw.astype(np.int64).astype(np.float64)
    seconds[np.isnat(raw)] = np.nan
    return seconds


def _parse_iso(text: pd.Series) -> np.ndarray:
    """ISO 8601 texts -> epoch seconds (NaN when unparsable); years far outside any plausible
    range give +-inf (out of range, judged by the caller) without being parsed."""
    out = np.full(len(text), np.nan)
    years = pd.to_numeric(text.str.extract(_YEAR, expand=False), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    far, value = _far(years)
    out[far] = value
    todo = text.notna().to_numpy(dtype=bool) & ~far
    if not todo.any():
        return out
    try:
        parsed = pd.to_datetime(text[todo], errors="coerce", utc=True, format="ISO8601")
        out[todo] = _datetime_seconds(parsed)
    except (ValueError, OverflowError, TypeError):  # one odd text: parse them one by one
        out[todo] = [_one_iso(value) for value in text[todo]]
    return out


def _one_iso(value: str) -> float:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, OverflowError, TypeError):
        return np.nan
    if stamp is pd.NaT:
        return np.nan
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(_datetime_seconds(pd.Series([stamp]))[0])


def _epochs(values: pd.Series, limits: Limits | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds float, unparsable mask) for a timestamp column of any reasonable type.

    Numbers are epoch seconds; with `limits.epoch_units = "auto"` (the default) a number of
    1e11 or more is epoch milliseconds. Out-of-range values come back as they are (or +-inf)
    for `_out_of_range` to judge."""
    auto = limits is None or limits.epoch_units == "auto"
    none = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetime_seconds(values), none
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        return _milliseconds(values.to_numpy(dtype=np.float64), auto), none
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        epochs = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return _milliseconds(epochs, auto), none
    fast = _plain_epochs(values, auto)
    if fast is not None:
        return fast
    text = values.astype("string").str.strip()
    numeric = _numbers(text)
    iso = pd.Series(_parse_iso(text.where(numeric.isna())), index=text.index)
    mixed = iso.where(numeric.isna(), _milliseconds(numeric.to_numpy(dtype=np.float64), auto))
    present = text.notna() & (text != "")
    out = mixed.to_numpy(dtype=np.float64, na_value=np.nan)
    return out, (present.to_numpy(dtype=bool, na_value=False) & np.isnan(out))


def _plain_epochs(values: pd.Series, auto: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """`_epochs` of the usual text column (ASCII str and missing values, most of them ISO
    times) with plain Python around one `pd.to_datetime`; None when the column is anything
    else or pandas raises (the general path then handles it)."""
    raw = values.to_numpy()
    if raw.dtype != object or not _plain_text(raw):
        return None
    text = _text(values.to_frame("t"), "t")
    present = ~_blank(text)
    try:  # every value a str
        timelike = np.fromiter(map(operator.contains, text, repeat(":")), dtype=bool, count=len(text))
    except TypeError:
        timelike = np.fromiter((v is not None and ":" in v for v in text), dtype=bool, count=len(text))
    numeric = np.full(len(text), np.nan)
    rest = present & ~timelike
    if rest.any():
        numeric[rest] = pd.to_numeric(pd.Series(text[rest], dtype="string"), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)
    epochs = _milliseconds(numeric, auto)
    todo = present & np.isnan(numeric)
    if todo.any():
        iso = _plain_iso(text[todo])
        if iso is None:
            return None
        epochs[todo] = iso
    return epochs, present & np.isnan(epochs)


# a time this close to (or beyond) 1700-01-01 or 2201-01-01 UTC may have a year outside
# [1700, 2200] in its text (with its UTC offset): its year is then read from the text
_YEARS_FROM = float(np.datetime64("1700-01-01", "s").astype(np.int64)) + 3 * 86_400
_YEARS_TO = float(np.datetime64("2201-01-01", "s").astype(np.int64)) - 3 * 86_400


def _years(texts: np.ndarray) -> np.ndarray:
    return np.asarray([float(m.group(1)) if (m := _YEAR.match(v)) else np.nan for v in texts])


def _far(years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(years outside [1700, 2200], their value: -inf before, +inf after)."""
    far = (years < 1700) | (years > 2200)
    return far, np.where(years[far] < 1700, -np.inf, np.inf)


def _plain_iso(texts: np.ndarray) -> np.ndarray | None:
    """`_parse_iso` of stripped str texts: one `pd.to_datetime` of them all; the year is read
    from the text (a regex per text) only where the time is unparsable or near those years.
    None when pandas raises on them (the general path `_parse_iso` then sets far years aside
    first and parses the rest one by one if it must)."""
    try:
        parsed = pd.to_datetime(pd.Series(texts, dtype="string"), errors="coerce", utc=True, format="ISO8601")
        iso = _datetime_seconds(parsed)
    except (ValueError, OverflowError, TypeError):  # e.g. a far year pandas cannot take
        return None
    with np.errstate(invalid="ignore"):
        check = np.isnan(iso) | (iso < _YEARS_FROM) | (iso > _YEARS_TO)
    if check.any():
        far, value = _far(_years(texts[check]))
        picked = iso[check]
        picked[far] = value
        iso[check] = picked
    return iso


def _milliseconds(epochs: np.ndarray, auto: bool) -> np.ndarray:
    if not auto:
        return epochs
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(epochs) >= MILLISECONDS_FROM, epochs / 1000.0, epochs)


def _out_of_range(epochs: np.ndarray, limits: Limits) -> np.ndarray:
    """Rows whose time lies outside [earliest_timestamp, wall clock + max_future]. The wall
    clock, not `--as-of`: a backtest's later rows wait, a row of the year 2100 is rejected."""
    earliest, latest = limits.earliest_epoch, now_epoch() + limits.max_future_seconds
    with np.errstate(invalid="ignore"):
        return (epochs < earliest) | (epochs > latest)


def _range_reason(raw: pd.Series, limits: Limits) -> Callable[[np.ndarray], np.ndarray]:
    bounds = (f" outside [{limits.earliest_timestamp}, now + {limits.max_future}] "
              "(limits.earliest_timestamp, limits.max_future)")

    def reasons(mask: np.ndarray) -> np.ndarray:
        picked = raw[mask].astype("string").fillna("")
        return np.asarray(["timestamp " + repr(str(v)[:40]) + bounds for v in picked], dtype=object)

    return reasons


def _reject_times(rejector: _Rejector, raw: pd.Series, field: str, limits: Limits,
                  *, required: bool, judge: bool = True) -> np.ndarray:
    """Parse a timestamp column, rejecting missing (if required), unparsable and (when
    `judge`) implausible values; returns epoch seconds (NaN where missing, not required)."""
    epochs, unparsable = _epochs(raw, limits)
    if required:
        rejector.reject(np.isnan(epochs) & ~unparsable, field, "missing required field")
    rejector.reject(unparsable, field, UNPARSABLE_TIME)
    if judge:
        rejector.reject(_out_of_range(epochs, limits), field, _range_reason(raw, limits))
    else:  # still no value that int64 seconds cannot hold
        with np.errstate(invalid="ignore"):
            rejector.reject(np.abs(epochs) > 2**62, field, UNPARSABLE_TIME)
    return epochs


_NO_NUL_TYPES = {str, float, int, bool, type(None), type(pd.NA)}


def _reject_nul(rejector: _Rejector, frame: pd.DataFrame) -> None:
    """No database stores a NUL character in text (PostgreSQL refuses the whole batch)."""
    for column in frame.columns:
        values = frame[column]
        if column in ("_row", RAW_COLUMN) or not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        array = values.to_numpy()
        if array.dtype == object and _no_nul(array):
            continue  # the usual column: plain values, no NUL (checked without pandas)
        try:
            nul = values.str.contains("\x00", regex=False).to_numpy(dtype=bool, na_value=False)
        except AttributeError:  # an object column without a single string: no NUL in it
            continue
        if nul.any():
            rejector.reject(nul, str(column)[:200], "contains a NUL character")


def _no_nul(array: np.ndarray) -> bool:
    """An object column of plain values (`_NO_NUL_TYPES`) without a NUL character."""
    try:
        joined = "".join(array)  # every value a str
    except TypeError:
        if not set(map(type, array)) <= _NO_NUL_TYPES:
            return False
        joined = "".join([v for v in array if type(v) is str])
    return "\x00" not in joined


def _reject_long(rejector: _Rejector, values: np.ndarray, field: str, limit: int, what: str) -> None:
    """Reject text (of `_text`'s str and None values) longer than `limit`."""
    if max(map(len, filter(None, values)), default=0) <= limit:
        return
    lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=len(values))
    too_long = lengths > limit
    if too_long.any():
        rejector.reject(too_long, field, lambda mask: np.asarray(
            [f"{what} of {int(n):,} characters (limit {limit:,})" for n in lengths[mask]], dtype=object))


def _scores(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64, rows with a present value that is not a number)."""
    if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "iufb":
        return raw.to_numpy(dtype=np.float64), np.zeros(len(raw), dtype=bool)
    scores = pd.to_numeric(raw, errors="coerce").astype("float64")
    suspect = (raw.notna() & scores.isna()).to_numpy()
    if suspect.any():  # unless it is blank text (= missing)
        suspect = suspect & (raw.astype("string").str.strip() != "").to_numpy(dtype=bool, na_value=False)
    return scores.to_numpy(dtype=np.float64, na_value=np.nan), suspect


def validate_predictions(frame: pd.DataFrame, ctx: ModelContext, *, judge_time: bool = True) -> Validated:
    """Check required fields, timestamps, classes and scores; return canonical rows.

    Canonical columns: prediction_id, ts (int epoch s), predicted, model_version,
    score_<class> for each known class whose column is present, the segment columns
    (strings, `(missing)` when absent) and the feature columns as given, plus `_row`.
    """
    source, limits = ctx.config.predictions, ctx.config.limits
    rejector = _Rejector(frame)
    _reject_nul(rejector, frame)
    ids = _text(frame, source.id)
    rejector.reject(_blank(ids), source.id, "missing required field")
    _reject_long(rejector, ids, source.id, limits.max_id_length, "id")
    predicted = _text(frame, source.prediction)
    rejector.reject(_blank(predicted), source.prediction, "missing required field")
    _reject_long(rejector, predicted, source.prediction, limits.max_value_length, "class")
    if source.timestamp not in frame.columns:
        rejector.reject(np.ones(len(frame), bool), source.timestamp, "missing required field")
        epochs = np.full(len(frame), np.nan)
    else:
        epochs = _reject_times(rejector, frame[source.timestamp], source.timestamp, limits, required=True,
                               judge=judge_time)
    if ctx.classes:
        rejector.reject(_unknown(predicted, ctx.classes), source.prediction, _unknown_class(predicted, ctx.classes))
    # the columns in their canonical order, assembled once (a later name replaces an earlier
    # one in place, as assigning columns one by one would)
    version = _text(frame, source.model_version)
    _reject_long(rejector, version, source.model_version, limits.max_value_length, "model version")
    out: dict[str, pd.Series | np.ndarray | float] = {
        "prediction_id": ids,
        "ts": epochs,
        "predicted": predicted,
        "model_version": pd.Series(version, index=frame.index, dtype="string"),
        "_row": frame["_row"].to_numpy(),
    }
    for cls in ctx.classes:
        column = f"{source.score_prefix}{cls}"
        if column not in frame.columns:
            continue
        scores, not_number = _scores(frame[column])
        rejector.reject(not_number, column, "score is not a number")
        with np.errstate(invalid="ignore"):
            rejector.reject((scores < 0) | (scores > 1), column, "score outside [0, 1]")
        out[f"score_{cls}"] = scores
    for segment in ctx.segments:
        values = _text(frame, segment)
        _reject_long(rejector, values, segment, limits.max_value_length, "segment value")
        out[segment] = np.where(_blank(values), MISSING_SEGMENT, values)
    for feature in ctx.features:
        if feature in ctx.segments:
            continue
        out[feature] = frame[feature] if feature in frame.columns else np.nan
    return Validated(_good(out, frame.index, rejector.bad, "ts"), rejector.result(), rejector.where())


def _good(out: dict[str, pd.Series | np.ndarray | float], index: pd.Index, bad: np.ndarray,
          time_column: str) -> pd.DataFrame:
    """The good rows of the canonical columns, the time as int64 epoch seconds."""
    times = out[time_column]
    assert isinstance(times, np.ndarray)
    out[time_column] = np.where(bad, 0, times).astype(np.int64)  # every good row has a time
    for name, values in out.items():  # text stays object (pandas would infer its str dtype)
        if isinstance(values, np.ndarray) and values.dtype == object:
            out[name] = pd.Series(values, index=index, dtype=object, copy=False)
    frame = pd.DataFrame(out, index=index)
    return frame.loc[~bad].copy() if bad.any() else frame


def validate_labels(frame: pd.DataFrame, ctx: ModelContext, default_ts: int, *,
                    judge_time: bool = True) -> Validated:
    """Canonical label rows: prediction_id, label, label_ts (int epoch s), `_row`."""
    source, limits = ctx.config.labels, ctx.config.limits
    rejector = _Rejector(frame)
    _reject_nul(rejector, frame)
    ids = _text(frame, source.id)
    rejector.reject(_blank(ids), source.id, "missing required field")
    _reject_long(rejector, ids, source.id, limits.max_id_length, "id")
    labels = _text(frame, source.label)
    rejector.reject(_blank(labels), source.label, "missing required field")
    _reject_long(rejector, labels, source.label, limits.max_value_length, "class")
    if source.timestamp in frame.columns:
        epochs = _reject_times(rejector, frame[source.timestamp], source.timestamp, limits, required=False,
                               judge=judge_time)
        epochs = np.where(np.isnan(epochs), float(default_ts), epochs)
    else:
        epochs = np.full(len(frame), float(default_ts))
    if ctx.classes:
        rejector.reject(_unknown(labels, ctx.classes), source.label, _unknown_class(labels, ctx.classes))
    out: dict[str, pd.Series | np.ndarray | float] = {
        "prediction_id": ids, "label": labels, "label_ts": epochs, "_row": frame["_row"].to_numpy()}
    return Validated(_good(out, frame.index, rejector.bad, "label_ts"), rejector.result(), rejector.where())
