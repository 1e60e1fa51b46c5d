"""Slices of ingested rows: one per combination of segment values, created in bulk."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import Engine, event, select

from monitor.config import parse_config
from monitor.context import load_context
from monitor.ingest.slices import slice_ids
from monitor.store.models import Slice, SliceValue


def test_many_new_combinations_are_stored_in_a_few_statements_with_their_values(
        engine: Engine, db_url: str) -> None:
    """With several many-valued segments nearly every row is a new combination; one round trip
    per new slice made ingestion crawl (bench/segments.py)."""
    config = parse_config({"database_url": db_url, "models": [
        {"name": "triage", "classes": ["ok", "bad"], "segments": ["store", "city"]}]})
    rows = pd.DataFrame({"store": [f"s{i % 40}" for i in range(300)] + ["s0"],
                         "city": [f"c{i}" for i in range(300)] + ["c0"]})
    writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("INSERT", "COPY")) and "slice" in statement:
            writes.append(statement)

    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            ids = slice_ids(conn, ctx, rows)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(writes) <= 2
    assert ids.iloc[0] == ids.iloc[300] and ids.nunique() == 300
    assert ids.iloc[:300].is_monotonic_increasing  # numbered in order of first appearance
    with engine.begin() as conn:
        keys = dict(conn.execute(select(Slice.id, Slice.key)).all())
        values = conn.execute(select(SliceValue.slice_id, SliceValue.attribute, SliceValue.value)).all()
        assert slice_ids(conn, ctx, rows).tolist() == ids.tolist()  # found again, nothing new
    stored = {(slice_id, attribute): value for slice_id, attribute, value in values}
    for row, slice_id in zip(rows.itertuples(index=False), ids, strict=True):
        assert json.loads(keys[slice_id]) == {"store": row.store, "city": row.city}
        assert (stored[(slice_id, "store")], stored[(slice_id, "city")]) == (row.store, row.city)
    assert len(keys) == 300 and len(values) == 600
