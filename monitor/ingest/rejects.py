"""Storing rejected rows, for files (the ledger) and POST bodies (the pipeline) alike.

Its own module so that the pipeline can store the rejects of a body without importing the
ledger, which imports the pipeline to load files (no cycle between the two).
"""

from __future__ import annotations

from typing import cast

import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.base import utcnow
from monitor.store.bulk import insert_frame
from monitor.store.models import RejectedRow

REJECTED = cast(Table, RejectedRow.__table__)  # declared as FromClause; a mapped class's is a Table


def store_rejects(conn: Connection, ctx: ModelContext, kind: str, source: str, file_id: int | None,
                  rejects: pd.DataFrame) -> None:
    if rejects.empty:
        return
    insert_frame(conn, REJECTED, pd.DataFrame({
        "model_id": ctx.model_id, "kind": kind, "source": source, "row_number": rejects["row_number"],
        "field": rejects["field"], "reason": rejects["reason"], "raw": rejects["raw"], "created_at": utcnow(),
    }))
