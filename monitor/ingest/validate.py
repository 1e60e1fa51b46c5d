"""Row validation: raw records -> canonical columns + rejects with (row, field, reason).

Vectorised: each rule is a boolean mask over the batch; a row is rejected for the first rule
it breaks, and every other row goes on (CONTRACT §1, DESIGN principle 8).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.context import ModelContext

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


def _epochs(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(epoch seconds float, unparsable mask) for a timestamp column of any reasonable type."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
        epochs = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return epochs.astype("float64"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        epochs = pd.to_numeric(values, errors="coerce").astype("float64")
        return epochs, pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    numeric = _numbers(text)
    parsed = pd.to_datetime(text.where(numeric.isna()), errors="coerce", utc=True, format="ISO8601")
    epochs = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    epochs = epochs.astype("float64").where(numeric.isna(), numeric.astype("float64"))
    present = text.notna() & (text != "")
    return epochs, present & epochs.isna()


def validate_predictions(frame: pd.DataFrame, ctx: ModelContext) -> Validated:
    """Check required fields, timestamps, classes and scores; return canonical rows.

    Canonical columns: prediction_id, ts (int epoch s), predicted, model_version,
    score_<class> for each known class whose column is present, the segment columns
    (strings, `(missing)` when absent) and the feature columns as given, plus `_row`.
    """
    source = ctx.config.predictions
    rejector = _Rejector(frame)
    ids = _text(frame, source.id)
    rejector.reject((ids.isna() | (ids == "")).to_numpy(), source.id, "missing required field")
    predicted = _text(frame, source.prediction)
    rejector.reject((predicted.isna() | (predicted == "")).to_numpy(), source.prediction, "missing required field")
    if source.timestamp not in frame.columns:
        rejector.reject(np.ones(len(frame), bool), source.timestamp, "missing required field")
        epochs = pd.Series(np.nan, index=frame.index)
    else:
        epochs, unparsable = _epochs(frame[source.timestamp])
        rejector.reject((epochs.isna() & ~unparsable).to_numpy(), source.timestamp, "missing required field")
        rejector.reject(unparsable.to_numpy(), source.timestamp, "unparsable timestamp (use ISO 8601 or epoch seconds)")
    if ctx.classes:
        unknown = predicted.notna() & ~predicted.isin(ctx.classes)
        rejector.reject(unknown.to_numpy(), source.prediction, _unknown_class(predicted, ctx.classes))
    # the columns in their canonical order, assembled once (a later name replaces an earlier
    # one in place, as assigning columns one by one would)
    out: dict[str, pd.Series | float] = {
        "prediction_id": ids,
        "ts": epochs,
        "predicted": predicted,
        "model_version": _text(frame, source.model_version),
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


def validate_labels(frame: pd.DataFrame, ctx: ModelContext, default_ts: int) -> Validated:
    """Canonical label rows: prediction_id, label, label_ts (int epoch s), `_row`."""
    source = ctx.config.labels
    rejector = _Rejector(frame)
    ids = _text(frame, source.id)
    rejector.reject((ids.isna() | (ids == "")).to_numpy(), source.id, "missing required field")
    labels = _text(frame, source.label)
    rejector.reject((labels.isna() | (labels == "")).to_numpy(), source.label, "missing required field")
    if source.timestamp in frame.columns:
        epochs, unparsable = _epochs(frame[source.timestamp])
        rejector.reject(unparsable.to_numpy(), source.timestamp, "unparsable timestamp (use ISO 8601 or epoch seconds)")
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
