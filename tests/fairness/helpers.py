"""Test helpers: simulated raw rows -> stored counts, and the fairlearn oracle on raw rows.

`store_counts` writes the core count tables (slices, slice_values, confusion_counts,
prediction_counts) straight from raw rows with a pandas groupby, the way ingestion stores
them, so the service can be tested before (and independently of) the ingest pipeline.
`oracle` computes the same records with fairlearn's MetricFrame on the raw rows of one
window; nothing in it uses monitor code.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, recall_score
from sqlalchemy.engine import Connection

from monitor.store.bulk import insert_frame
from monitor.store.models import ConfusionCount, PredictionCount, Slice, SliceValue

MISSING = "(missing)"


def raw_rows(predictions: pd.DataFrame, labels: pd.DataFrame, segments: list[str]) -> pd.DataFrame:
    """Predictions (epoch `ts`) joined with their visible label (NaN when none yet)."""
    rows = predictions[["prediction_id", "timestamp", "prediction", *segments]].copy()
    stamps = pd.to_datetime(rows["timestamp"], utc=True)
    rows["ts"] = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    for segment in segments:
        rows[segment] = rows[segment].fillna(MISSING).astype(str)
    latest = labels.drop_duplicates("prediction_id", keep="last").set_index("prediction_id")["label"]
    rows["label"] = rows["prediction_id"].map(latest)
    return rows


def store_counts(conn: Connection, model_id: int, rows: pd.DataFrame, segments: list[str],
                 bucket: int = 3600) -> None:
    """Write slices and the two count tables for `rows` (from `raw_rows`)."""
    rows = rows.copy()
    keys = rows[segments].apply(lambda r: json.dumps(dict(r), sort_keys=True), axis=1)
    unique_keys = pd.Index(keys.unique())
    slice_ids = np.arange(1, len(unique_keys) + 1) + model_id * 100_000
    insert_frame(conn, Slice.__table__,
                 pd.DataFrame({"id": slice_ids, "model_id": model_id, "key": unique_keys}))
    values = [
        {"slice_id": int(sid), "attribute": attribute, "value": value}
        for sid, key in zip(slice_ids, unique_keys, strict=True)
        for attribute, value in json.loads(key).items()
    ]
    insert_frame(conn, SliceValue.__table__, pd.DataFrame(values))
    rows["slice_id"] = slice_ids[unique_keys.get_indexer(keys)]
    rows["bucket_start"] = rows["ts"] - rows["ts"] % bucket
    rows["model_id"] = model_id
    predicted = rows.groupby(["model_id", "bucket_start", "slice_id", "prediction"], as_index=False).size()
    insert_frame(conn, PredictionCount.__table__,
                 predicted.rename(columns={"prediction": "pred_class", "size": "n"}))
    labelled = rows.loc[rows["label"].notna()]
    confusion = labelled.groupby(
        ["model_id", "bucket_start", "slice_id", "label", "prediction"], as_index=False
    ).size()
    insert_frame(conn, ConfusionCount.__table__, confusion.rename(
        columns={"label": "true_class", "prediction": "pred_class", "size": "n"}))


def window_rows(rows: pd.DataFrame, end: int, window: int) -> pd.DataFrame:
    """Labelled rows of the window ending at `end` (end - window <= ts < end)."""
    inside = (rows["ts"] >= end - window) & (rows["ts"] < end) & rows["label"].notna()
    return rows.loc[inside]


def _nan_recall(y_true, y_pred):  # type: ignore[no-untyped-def]
    return recall_score(y_true, y_pred, pos_label=1, zero_division=np.nan)


def _nan_fpr(y_true, y_pred):  # type: ignore[no-untyped-def]
    negatives = np.asarray(y_true) == 0
    return np.nan if negatives.sum() == 0 else float(np.mean(np.asarray(y_pred)[negatives] == 1))


FAIRLEARN_METRICS = {
    "tpr": functools.partial(true_positive_rate, pos_label=1),
    "fpr": functools.partial(false_positive_rate, pos_label=1),
    "precision": functools.partial(precision_score, pos_label=1, zero_division=np.nan),
    "selection_rate": functools.partial(selection_rate, pos_label=1),
}
# Same metrics, null where the denominator is 0 (fairlearn's own tpr/fpr give 0 there).
NULL_AWARE_METRICS = {**FAIRLEARN_METRICS, "tpr": _nan_recall, "fpr": _nan_fpr}


def metric_frames(rows: pd.DataFrame, cls: str, attribute: str) -> tuple[MetricFrame, MetricFrame]:
    """(fairlearn's own tpr and fpr, all four metrics null-aware) by group of `attribute`
    for class `cls` (precision and selection_rate are the same functions in both)."""
    y_true = (rows["label"] == cls).astype(int).to_numpy()
    y_pred = (rows["prediction"] == cls).astype(int).to_numpy()
    groups = rows[attribute].to_numpy()
    plain = MetricFrame(metrics={m: FAIRLEARN_METRICS[m] for m in ("tpr", "fpr")}, y_true=y_true, y_pred=y_pred,
                        sensitive_features=pd.Series(groups, name=attribute))
    nullable = MetricFrame(metrics=NULL_AWARE_METRICS, y_true=y_true, y_pred=y_pred,
                           sensitive_features=pd.Series(groups, name=attribute))
    return plain, nullable


def largest_group(rows: pd.DataFrame, attribute: str) -> str:
    counts = rows[attribute].value_counts()
    best = counts.max()
    return sorted(counts.index[counts == best])[0]


REST = "(rest)"


def comparison_value(rows: pd.DataFrame, cls: str, attribute: str, group: str, reference: str,
                     by_group: pd.DataFrame, metric: str) -> float:
    """The value a group is compared with, by sklearn/fairlearn on raw rows: the named
    reference group's, or the metric on every row outside the group ("(rest)")."""
    if reference != REST:
        return float(by_group.loc[reference, metric])
    outside = rows[rows[attribute] != group]
    if outside.empty:
        return np.nan
    y_true = (outside["label"] == cls).astype(int).to_numpy()
    y_pred = (outside["prediction"] == cls).astype(int).to_numpy()
    return float(NULL_AWARE_METRICS[metric](y_true, y_pred))
