"""Slices of ingested rows: the slice id of every row from its segment values, past the
`limits.max_segment_values` cap (new values beyond it are counted as `(other)`).

Split from the pipeline so that the reference loader and the read layer can use it without the
rest of ingest; it runs inside the caller's transaction like the pipeline.
"""

from __future__ import annotations

import json
import logging
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.bulk import insert_frame, inserted_id, select_in
from monitor.store.models import Slice, SliceValue

# the pipeline's logger name, which this warning was always logged under (log filters use it)
log = logging.getLogger("monitor.ingest.pipeline")
# a mapped class's __table__ is declared as FromClause; here it is a Table
SLICES = cast(Table, Slice.__table__)
SLICE_VALUES = cast(Table, SliceValue.__table__)

OTHER_SEGMENT = "(other)"  # the value of every new segment value past limits.max_segment_values


def cap_segment_values(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose segment values past `limits.max_segment_values` distinct values of their
    attribute (stored so far plus new ones, in order of first appearance) are `(other)`.

    One attribute with 100k ids would otherwise make 100k slices, as many alert series and a
    /metrics page of megabytes. The values stored are bounded by the limit, so reading them
    all is cheap; the cut is logged and shown on the Data page (an `(other)` value)."""
    limit = ctx.config.limits.max_segment_values
    for segment in ctx.segments:
        present = pd.unique(rows[segment])
        if len(present) == 0:
            continue
        stored = set(conn.execute(
            select(SliceValue.value).distinct()
            .join(Slice, Slice.id == SliceValue.slice_id)
            .where(Slice.model_id == ctx.model_id, SliceValue.attribute == segment)
        ).scalars())
        new = [v for v in present if v not in stored and v != OTHER_SEGMENT]
        room = max(limit - len(stored - {OTHER_SEGMENT}), 0)
        if len(new) <= room:
            continue
        refused = new[room:]
        hit = rows[segment].isin(refused)
        log.warning("model %s: segment %r has more than %d distinct values; %d rows of %d new values "
                    "are counted as %s (limits.max_segment_values)", ctx.name, segment, limit,
                    int(hit.sum()), len(refused), OTHER_SEGMENT)
        rows = rows.assign(**{segment: rows[segment].where(~hit, OTHER_SEGMENT)})
    return rows


def slice_ids(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> pd.Series:
    """The slice id of every row (inserting new slices), from its segment values (capped
    by `cap_segment_values` first)."""
    if ctx.segments and len(rows):
        rows = cap_segment_values(conn, ctx, rows)
    if not ctx.segments:
        combo = np.zeros(len(rows), dtype=np.int64)
        wanted = ["{}"] if len(rows) else []
    else:
        # one code per distinct combination of segment values, numbered in order of first
        # appearance (so new slices get their ids in that order)
        combo = np.zeros(len(rows), dtype=np.int64)
        for segment in ctx.segments:
            codes, uniques = pd.factorize(rows[segment], use_na_sentinel=False)
            combo, _ = pd.factorize(combo * len(uniques) + codes)
        _, first_row = np.unique(combo, return_index=True)  # codes 0..k-1: row of each one's first
        firsts = rows[ctx.segments].iloc[first_row]
        wanted = [json.dumps(dict(zip(ctx.segments, values)), sort_keys=True)
                  for values in firsts.itertuples(index=False, name=None)]
    known = _stored_ids(conn, ctx.model_id, wanted)
    new = [key for key in wanted if key not in known]
    if new:
        known.update(_insert_slices(conn, ctx, new))
    ids = np.asarray([known[key] for key in wanted], dtype=np.int64)
    return pd.Series(ids[combo], index=rows.index, dtype="int64")


def _stored_ids(conn: Connection, model_id: int, keys: list[str]) -> dict[str, int]:
    return dict(select_in(conn, SLICES, key_column="key", keys=keys, columns=["id"],
                          equal={"model_id": model_id}))


def _insert_slices(conn: Connection, ctx: ModelContext, keys: list[str]) -> dict[str, int]:
    """Insert the slices `keys` (not stored yet) and their values, a few statements for all of
    them: with several attributes of many values nearly every row can be a new combination, and
    one round trip per slice made ingestion crawl (bench/segments.py). Ids follow `keys`' order."""
    if len(keys) == 1:  # the common case of a steady stream: one statement, its id returned
        ids = {keys[0]: inserted_id(conn.execute(SLICES.insert().values(model_id=ctx.model_id, key=keys[0])))}
    else:
        insert_frame(conn, SLICES, pd.DataFrame({"model_id": ctx.model_id, "key": keys}))
        ids = _stored_ids(conn, ctx.model_id, keys)
    values = [(ids[key], json.loads(key)) for key in keys]
    frame = pd.DataFrame([(slice_id, attribute, value) for slice_id, pairs in values for attribute, value in pairs.items()],
                         columns=["slice_id", "attribute", "value"])
    insert_frame(conn, SLICE_VALUES, frame)
    return ids
