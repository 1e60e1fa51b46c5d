"""The reference: labelled data with predictions that defines "normal" for a model.

Loaded once per content (fingerprint of the file and of the config that shapes it): it fixes
the classes (when the config does not), the minority classes (every class under
`minority_threshold` of the reference labels), the reference confusion counts per slice, and
whatever the hooks (drift bins, calibration) derive from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import cast

import pandas as pd
from sqlalchemy import Table, delete, update
from sqlalchemy.engine import Connection

from monitor.context import ModelContext, store_learned_classes
from monitor.ingest import hooks
from monitor.ingest.ledger import input_columns, sha256_of
from monitor.ingest.readers import UnreadableFile, read_all
from monitor.ingest.slices import slice_ids
from monitor.ingest.validate import validate_labels, validate_predictions
from monitor.store.base import utcnow
from monitor.store.bulk import add_counts
from monitor.store.models import MonitoredModel, ReferenceCount

log = logging.getLogger(__name__)
REFERENCE_COUNTS = cast(Table, ReferenceCount.__table__)  # declared as FromClause; a mapped class's is a Table


class UnusableReference(Exception):
    """The reference cannot be used (named file and reason)."""


def _fingerprint(ctx: ModelContext, digest: str) -> str:
    shape = ctx.config.model_dump(include={"classes", "minority_classes", "minority_threshold", "segments",
                                           "features", "predictions", "labels", "drift", "estimation"})
    return hashlib.sha256((digest + json.dumps(shape, sort_keys=True, default=str)).encode()).hexdigest()[:40]


def learn_classes(labels: pd.Series, predicted: pd.Series, threshold: float) -> tuple[list[str], list[str]]:
    """Classes (sorted) and minority classes (share of labels under `threshold`)."""
    classes = sorted(set(labels.dropna().astype(str)) | set(predicted.dropna().astype(str)))
    shares = labels.astype(str).value_counts(normalize=True)
    minority = [c for c in classes if shares.get(c, 0.0) < threshold]
    return classes, minority


def prepare_reference(conn: Connection, ctx: ModelContext, base_dir: Path) -> bool:
    """Load the reference when it is new or changed; updates `ctx` in place.

    Returns True when it (re)loaded. Raises UnusableReference for an unusable reference.
    """
    if not ctx.config.reference:
        if not ctx.classes:
            log.info("model %s has no reference and no classes: classes are not validated", ctx.name)
        return False
    resolved = Path(ctx.config.reference).expanduser()
    if not resolved.is_absolute():
        resolved = base_dir / resolved
    if not resolved.exists():
        raise UnusableReference(f"reference file {resolved} of model {ctx.name!r} does not exist")
    fingerprint = _fingerprint(ctx, sha256_of(resolved))
    stored = conn.execute(
        MonitoredModel.__table__.select().where(MonitoredModel.id == ctx.model_id)
    ).one()
    if stored.reference_fingerprint == fingerprint:
        return False
    source = ctx.config.predictions
    strings = [source.id, source.prediction, source.model_version, ctx.config.labels.label, *ctx.segments]
    # the columns a prediction file keeps, and the label: a nested value in any other column
    # never rejects a reference row
    _, used = input_columns(ctx, "predictions")
    try:
        raw, unparsed = read_all(resolved, strings, keep=lambda c: used(c) or c == ctx.config.labels.label)
    except UnreadableFile as error:
        raise UnusableReference(str(error)) from None
    label_column = ctx.config.labels.label
    if label_column not in raw.columns:
        raise UnusableReference(f"reference {resolved}: no {label_column!r} column (the true class)")
    if source.prediction not in raw.columns:
        raise UnusableReference(f"reference {resolved}: no {source.prediction!r} column (the predicted class)")
    if not ctx.config.classes:
        classes, minority = learn_classes(raw[label_column], raw[source.prediction], ctx.config.minority_threshold)
        ctx.classes = classes
        ctx.minority_classes = list(ctx.config.minority_classes or minority)
    elif not ctx.config.minority_classes:
        _, minority = learn_classes(raw[label_column], raw[source.prediction], ctx.config.minority_threshold)
        ctx.minority_classes = [c for c in minority if c in ctx.classes]
    store_learned_classes(conn, ctx.model_id, ctx.classes, ctx.minority_classes)
    if source.timestamp not in raw.columns:
        raw = raw.assign(**{source.timestamp: 0})
    if source.id not in raw.columns:
        raw = raw.assign(**{source.id: [f"ref-{i}" for i in range(len(raw))]})
    # reference rows may be of any age: their times are not judged (they are not counted by time)
    validated = validate_predictions(raw, ctx, judge_time=False)
    labels = validate_labels(raw.loc[raw["_row"].isin(validated.rows["_row"])].assign(
        **{ctx.config.labels.id: raw[source.id]}), ctx, default_ts=0, judge_time=False)
    skipped = len(raw) + len(unparsed) - len(labels.rows)
    if skipped:
        first = pd.concat([unparsed, validated.rejects, labels.rejects]).head(3)
        log.warning("reference %s: %d rows skipped, e.g. %s", resolved, skipped,
                    "; ".join(f"row {r.row_number} {r.field}: {r.reason}" for r in first.itertuples()))
    reference = validated.rows.merge(labels.rows[["_row", "label"]], on="_row", how="inner")
    if reference.empty:
        raise UnusableReference(f"reference {resolved}: no usable rows")
    reference = reference.assign(slice_id=slice_ids(conn, ctx, reference))
    conn.execute(delete(ReferenceCount).where(ReferenceCount.model_id == ctx.model_id))
    counts = reference.groupby(["slice_id", "label", "predicted"], as_index=False).size()
    add_counts(conn, REFERENCE_COUNTS, pd.DataFrame({
        "model_id": ctx.model_id, "slice_id": counts["slice_id"], "true_class": counts["label"],
        "pred_class": counts["predicted"], "n": counts["size"],
    }), key_columns=["model_id", "slice_id", "true_class", "pred_class"])
    for hook in hooks.reference_hooks():
        hook(conn, ctx, reference.drop(columns=["_row"]))
    conn.execute(update(MonitoredModel).where(MonitoredModel.id == ctx.model_id).values(
        reference_fingerprint=fingerprint, reference_rows=len(reference), reference_prepared_at=utcnow()))
    log.info("model %s: reference %s loaded (%d rows)", ctx.name, resolved, len(reference))
    return True

