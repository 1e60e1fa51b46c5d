"""Row validation: raw records -> canonical columns + rejects with (row, field, reason).

Vectorised: each rule is a boolean mask over the batch; a row is rejected for the first rule
it breaks, and every other row goes on (docs/contract.md §1, docs/design.md principle 8).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.config import Limits
from monitor.context import ModelContext
from monitor.timeutil import now_epoch

MISSING_SEGMENT = "(missing)"
REJECT_COLUMNS = ["row_number", "field", "reason", "raw"]


@dataclass
class Validated:
    rows: pd.DataFrame  # canonical columns, good rows only
    rejects: pd.DataFrame  # REJECT_COLUMNS


class _Rejector:
    """Collects rejects: the first failing rule of a row wins."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.bad = np.zeros(len(frame), dtype=bool)
        self.parts: list[pd.DataFrame] = []

    def reject(self, mask: np.ndarray | pd.Series, field: str,
               reason: str | pd.Series | Callable[[np.ndarray], np.ndarray]) -> None:
        """`reason`: one text, a Series of texts, or a function of the rejected rows' mask
        giving their texts (so that texts are only built for the rows rejected)."""
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if not mask.any():
            return
        self.bad |= mask
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

    def result(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=REJECT_COLUMNS)
        return pd.concat(self.parts, ignore_index=True)


def _raw_json(frame: pd.DataFrame) -> list[str]:
    columns = [c for c in frame.columns if c != "_row"]
    records = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [json.dumps(dict(zip(columns, row)), default=str)[:2000] for row in records.itertuples(index=False, name=None)]


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return frame[column].astype("string").str.strip()


def _unknown_class(values: pd.Series, classes: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Reasons `unknown class 'x' (known: ...)`, built only for the rows rejected."""
    known = f" (known: {', '.join(classes)})"

    def reasons(mask: np.ndarray) -> np.ndarray:
        picked = values[mask].fillna("")
        return np.asarray(["unknown class " + repr(v) + known for v in picked], dtype=object)

    return reasons


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
    far = (years < 1700) | (years > 2200)
    out[far] = np.where(years[far] < 1700, -np.inf, np.inf)
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


def _epochs(values: pd.Series, limits: Limits | None = None) -> tuple[pd.Series, pd.Series]:
    """(epoch seconds float, unparsable mask) for a timestamp column of any reasonable type.

    Numbers are epoch seconds; with `limits.epoch_units = "auto"` (the default) a number of
    1e11 or more is epoch milliseconds. Out-of-range values come back as they are (or +-inf)
    for `_out_of_range` to judge."""
    auto = limits is None or limits.epoch_units == "auto"
    if pd.api.types.is_datetime64_any_dtype(values):
        epochs = pd.Series(_datetime_seconds(values), index=values.index)
        return epochs, pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        epochs = pd.to_numeric(values, errors="coerce").astype("float64")
        return _milliseconds(epochs, auto), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    numeric = _numbers(text)
    iso = pd.Series(_parse_iso(text.where(numeric.isna())), index=text.index)
    epochs = iso.where(numeric.isna(), _milliseconds(numeric.astype("float64"), auto))
    present = text.notna() & (text != "")
    return epochs, (present & epochs.isna()).astype(bool)


def _milliseconds(epochs: pd.Series, auto: bool) -> pd.Series:
    if not auto:
        return epochs
    return epochs.where(~(epochs.abs() >= MILLISECONDS_FROM), epochs / 1000.0)


def _out_of_range(epochs: pd.Series, limits: Limits) -> np.ndarray:
    """Rows whose time lies outside [earliest_timestamp, wall clock + max_future]. The wall
    clock, not `--as-of`: a backtest's later rows wait, a row of the year 2100 is rejected."""
    earliest, latest = limits.earliest_epoch, now_epoch() + limits.max_future_seconds
    values = epochs.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (values < earliest) | (values > latest)


def _range_reason(raw: pd.Series, limits: Limits) -> Callable[[np.ndarray], np.ndarray]:
    bounds = (f" outside [{limits.earliest_timestamp}, now + {limits.max_future}] "
              "(limits.earliest_timestamp, limits.max_future)")

    def reasons(mask: np.ndarray) -> np.ndarray:
        picked = raw[mask].astype("string").fillna("")
        return np.asarray(["timestamp " + repr(str(v)[:40]) + bounds for v in picked], dtype=object)

    return reasons


def _reject_times(rejector: _Rejector, raw: pd.Series, field: str, limits: Limits,
                  *, required: bool, judge: bool = True) -> pd.Series:
    """Parse a timestamp column, rejecting missing (if required), unparsable and (when
    `judge`) implausible values; returns epoch seconds (NaN where missing, not required)."""
    epochs, unparsable = _epochs(raw, limits)
    if required:
        rejector.reject((epochs.isna() & ~unparsable).to_numpy(), field, "missing required field")
    rejector.reject(unparsable.to_numpy(), field, UNPARSABLE_TIME)
    if judge:
        rejector.reject(_out_of_range(epochs, limits), field, _range_reason(raw, limits))
    else:  # still no value that int64 seconds cannot hold
        rejector.reject((epochs.abs() > 2**62).to_numpy(dtype=bool, na_value=False), field, UNPARSABLE_TIME)
    return epochs


def _reject_nul(rejector: _Rejector, frame: pd.DataFrame) -> None:
    """No database stores a NUL character in text (PostgreSQL refuses the whole batch)."""
    for column in frame.columns:
        values = frame[column]
        if column == "_row" or not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        try:
            nul = values.str.contains("\x00", regex=False).to_numpy(dtype=bool, na_value=False)
        except AttributeError:  # an object column without a single string: no NUL in it
            continue
        if nul.any():
            rejector.reject(nul, str(column)[:200], "contains a NUL character")


def _reject_long(rejector: _Rejector, values: pd.Series, field: str, limit: int, what: str) -> None:
    lengths = values.str.len().to_numpy(dtype=np.float64, na_value=0.0)
    too_long = lengths > limit
    if too_long.any():
        rejector.reject(too_long, field, lambda mask: np.asarray(
            [f"{what} of {int(n):,} characters (limit {limit:,})" for n in lengths[mask]], dtype=object))


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
    rejector.reject((ids.isna() | (ids == "")).to_numpy(), source.id, "missing required field")
    _reject_long(rejector, ids, source.id, limits.max_id_length, "id")
    predicted = _text(frame, source.prediction)
    rejector.reject((predicted.isna() | (predicted == "")).to_numpy(), source.prediction, "missing required field")
    _reject_long(rejector, predicted, source.prediction, limits.max_value_length, "class")
    if source.timestamp not in frame.columns:
        rejector.reject(np.ones(len(frame), bool), source.timestamp, "missing required field")
        epochs = pd.Series(np.nan, index=frame.index)
    else:
        epochs = _reject_times(rejector, frame[source.timestamp], source.timestamp, limits, required=True,
                               judge=judge_time)
    if ctx.classes:
        unknown = predicted.notna() & ~predicted.isin(ctx.classes)
        rejector.reject(unknown.to_numpy(), source.prediction, _unknown_class(predicted, ctx.classes))
    # the columns in their canonical order, assembled once (a later name replaces an earlier
    # one in place, as assigning columns one by one would)
    version = _text(frame, source.model_version)
    _reject_long(rejector, version, source.model_version, limits.max_value_length, "model version")
    out: dict[str, pd.Series | float] = {
        "prediction_id": ids,
        "ts": epochs,
        "predicted": predicted,
        "model_version": version,
        "_row": frame["_row"],
    }
    for cls in ctx.classes:
        column = f"{source.score_prefix}{cls}"
        if column not in frame.columns:
            continue
        raw = frame[column]
        scores = pd.to_numeric(raw, errors="coerce").astype("float64")
        # a present value that is not a number, unless it is blank text (= missing)
        suspect = (raw.notna() & scores.isna()).to_numpy()
        if suspect.any():
            not_number = suspect & (raw.astype("string").str.strip() != "").to_numpy(dtype=bool, na_value=False)
            rejector.reject(not_number, column, "score is not a number")
        outside = (scores < 0) | (scores > 1)
        rejector.reject(outside.fillna(False).to_numpy(), column, "score outside [0, 1]")
        out[f"score_{cls}"] = scores
    for segment in ctx.segments:
        values = _text(frame, segment)
        _reject_long(rejector, values, segment, limits.max_value_length, "segment value")
        out[segment] = values.where(values.notna() & (values != ""), MISSING_SEGMENT).astype(object)
    for feature in ctx.features:
        if feature in ctx.segments:
            continue
        out[feature] = frame[feature] if feature in frame.columns else np.nan
    good = pd.DataFrame(out, index=frame.index).loc[~rejector.bad].copy()
    good["ts"] = good["ts"].astype("int64")
    good["prediction_id"] = good["prediction_id"].astype(object)
    good["predicted"] = good["predicted"].astype(object)
    return Validated(good, rejector.result())


def validate_labels(frame: pd.DataFrame, ctx: ModelContext, default_ts: int, *,
                    judge_time: bool = True) -> Validated:
    """Canonical label rows: prediction_id, label, label_ts (int epoch s), `_row`."""
    source, limits = ctx.config.labels, ctx.config.limits
    rejector = _Rejector(frame)
    _reject_nul(rejector, frame)
    ids = _text(frame, source.id)
    rejector.reject((ids.isna() | (ids == "")).to_numpy(), source.id, "missing required field")
    _reject_long(rejector, ids, source.id, limits.max_id_length, "id")
    labels = _text(frame, source.label)
    rejector.reject((labels.isna() | (labels == "")).to_numpy(), source.label, "missing required field")
    _reject_long(rejector, labels, source.label, limits.max_value_length, "class")
    if source.timestamp in frame.columns:
        epochs = _reject_times(rejector, frame[source.timestamp], source.timestamp, limits, required=False,
                               judge=judge_time)
        epochs = epochs.fillna(default_ts)
    else:
        epochs = pd.Series(float(default_ts), index=frame.index)
    if ctx.classes:
        unknown = labels.notna() & ~labels.isin(ctx.classes)
        rejector.reject(unknown.to_numpy(), source.label, _unknown_class(labels, ctx.classes))
    out = pd.DataFrame({"prediction_id": ids, "label": labels, "label_ts": epochs, "_row": frame["_row"]})
    good = out.loc[~rejector.bad].copy()
    good["label_ts"] = good["label_ts"].astype("int64")
    good["prediction_id"] = good["prediction_id"].astype(object)
    good["label"] = good["label"].astype(object)
    return Validated(good, rejector.result())
