"""Test helpers: a model context and canonical (ingest-shaped) frames on a real database.

Slices are created by the core ingest's own `slice_ids` (one per combination of segment
values), so the estimation hooks and `windowed_counts` see what they see in
production. Oracles (numpy sums, sklearn) always work on the raw rows, never on our output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.config import EstimationSettings, ModelConfig
from monitor.context import ModelContext, load_context
from monitor.ingest.pipeline import slice_ids

CLASSES = ["routine", "urgent", "critical"]


def make_context(
    conn: Connection,
    *,
    classes: list[str] = CLASSES,
    segments: list[str] | None = None,
    bucket: str = "1h",
    calibration: str = "auto",
    name: str = "triage",
) -> ModelContext:
    config = ModelConfig(
        name=name,
        classes=classes,
        segments=segments if segments is not None else ["sex", "region"],
        bucket=bucket,
        estimation=EstimationSettings(calibration=calibration),
    )
    return load_context(conn, config)


def epoch_seconds(values: pd.Series) -> pd.Series:
    """ISO strings or epoch numbers -> int64 epoch seconds, whatever the datetime unit
    pandas picks (pandas 3 parses to microseconds, not nanoseconds)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("int64")
    parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")


def canonical(conn: Connection, ctx: ModelContext, frame: pd.DataFrame) -> pd.DataFrame:
    """docs/contract.md §1 columns (timestamp, prediction, ...) -> the hooks' canonical columns."""
    out = pd.DataFrame({
        "prediction_id": frame["prediction_id"].astype(str),
        "ts": epoch_seconds(frame["timestamp"]),
        "predicted": frame["prediction"].astype(str),
    })
    out["bucket_start"] = out["ts"] - out["ts"] % ctx.bucket
    for segment in ctx.segments:
        out[segment] = frame[segment].fillna("(missing)").astype(str)
    out["slice_id"] = slice_ids(conn, ctx, out)
    for column in frame.columns:
        if column.startswith("score_"):
            out[column] = frame[column].astype(float)
    if "label" in frame.columns:
        out["label"] = frame["label"].astype(str)
    return out


def random_calibrated(n: int, seed: int, *, classes: list[str] = CLASSES, start: int = 1_704_067_200,
                      days: int = 3, sharpen: float = 1.0) -> pd.DataFrame:
    """Small multiclass data in docs/contract.md §1 shape. The true class is drawn from
    softmax(logits); the logged scores are softmax(sharpen * logits), so calibrated when
    sharpen == 1 and over-confident when sharpen > 1."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    bias = np.log(np.r_[np.full(k - 1, 0.97 / (k - 1)), 0.03])
    logits = rng.normal(0, 1.5, size=(n, k)) + bias
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    logged = np.exp(sharpen * logits) / np.exp(sharpen * logits).sum(axis=1, keepdims=True)
    # a cost-weighted rule so the rare class is predicted at a useful rate
    predicted = np.argmax(logged * np.r_[np.ones(k - 1), 6.0], axis=1)
    frame = pd.DataFrame({
        "prediction_id": [f"r{seed}-{i}" for i in range(n)],
        "timestamp": start + np.sort(rng.integers(0, days * 86400, n)),
        "prediction": np.asarray(classes)[predicted],
        "sex": rng.choice(["F", "M"], n),
        "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        "label": np.asarray(classes)[truth],
    })
    for c, name in enumerate(classes):
        frame[f"score_{name}"] = logged[:, c]
    return frame
