"""Test helpers: canonical ingest batches from simulated logs, fed through the drift hooks.

The hooks receive what the ingest pipeline hands them (monitor/ingest/hooks.py): canonical
columns prediction_id, ts, predicted, score_<class>, segment columns, features, slice_id.
`canonical` builds exactly that from a docs/contract.md prediction log, with slices created by the
pipeline's own `slice_ids`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.config import parse_config
from monitor.context import ModelContext, load_context
from monitor.drift import aggregate
from monitor.ingest.pipeline import slice_ids


def model_config(features, *, segments=("region",), classes=("a", "b", "c"), **drift):
    document = {"models": [{
        "name": "m", "classes": list(classes), "segments": list(segments),
        "features": list(features), "drift": drift,
    }]}
    return parse_config(document).models[0]


def canonical(conn: Connection, ctx: ModelContext, log: pd.DataFrame) -> pd.DataFrame:
    """A prediction (or reference) log -> the canonical batch the hooks receive."""
    frame = log.rename(columns={"prediction": "predicted"}).copy()
    if "timestamp" in frame:
        # our own parse (not timeutil.parse_timestamps) keeps the test independent of it
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame["ts"] = ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("float64").to_numpy()
        frame = frame.drop(columns=["timestamp"])
    else:
        frame["ts"] = 0.0
    for segment in ctx.segments:
        values = frame[segment].astype("string") if segment in frame else pd.Series(pd.NA, index=frame.index)
        frame[segment] = values.fillna("(missing)").astype(object)
    frame["slice_id"] = slice_ids(conn, ctx, frame).to_numpy()
    frame["bucket_start"] = (np.floor(frame["ts"] / ctx.bucket) * ctx.bucket).astype(np.int64)
    return frame


def load(conn: Connection, model, reference: pd.DataFrame | None, batches: list[pd.DataFrame]) -> ModelContext:
    """Reference then prediction batches through the drift hooks; returns the context."""
    ctx = load_context(conn, model)
    if reference is not None:
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, reference))
    for batch in batches:
        aggregate.on_predictions(conn, ctx, canonical(conn, ctx, batch))
    return ctx


def ingest(conn: Connection, model, reference: pd.DataFrame | None, batches: list[pd.DataFrame]) -> ModelContext:
    """Like `load`, but predictions go through the real ingest pipeline (every hook, counts)."""
    from monitor.ingest.pipeline import ingest_frame

    ctx = load_context(conn, model)
    if reference is not None:
        aggregate.on_reference(conn, ctx, canonical(conn, ctx, reference))
    for batch in batches:
        result = ingest_frame(conn, ctx, "predictions", batch)
        assert result.rejected == 0, result.reasons[:3]
    return ctx
