"""`monitor.store.bulk.update_rows` gives what one UPDATE per row in order gives, on both
backends (PostgreSQL: one UPDATE ... FROM unnest per chunk): with `only_null` the first row
of a key sets the column and the later ones find it set; without, the last row wins; rows
whose key is absent change nothing."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, select

from monitor.store.bulk import update_rows

METADATA = MetaData()
ITEMS = Table("update_rows_items", METADATA, Column("model_id", Integer, primary_key=True),
              Column("item", String(64), primary_key=True), Column("stamp", BigInteger, nullable=True),
              Column("note", String(64), nullable=True))


def test_update_rows_in_order(engine):
    METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(ITEMS.insert(), [{"model_id": 1, "item": f"i{k}", "stamp": 5 if k == 3 else None, "note": None}
                                      for k in range(6)])
        update_rows(conn, ITEMS, pd.DataFrame({"stamp": [10, 11, 12, 13, 14], "model_id": 1,
                                               "item": ["i0", "i1", "i0", "i3", "nobody"]}),
                    key_columns=["model_id", "item"], value_columns=["stamp"], only_null=["stamp"])
        update_rows(conn, ITEMS, pd.DataFrame({"note": ["a", "b", "c"], "model_id": 1, "item": ["i4", "i4", "i5"]}),
                    key_columns=["model_id", "item"], value_columns=["note"])
        rows = {item: (stamp, note) for item, stamp, note in
                conn.execute(select(ITEMS.c.item, ITEMS.c.stamp, ITEMS.c.note))}
    assert rows == {"i0": (10, None), "i1": (11, None), "i2": (None, None), "i3": (5, None),
                    "i4": (None, "b"), "i5": (None, "c")}
