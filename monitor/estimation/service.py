"""Estimated (label-free) performance per window, class and series."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.store.windows import WindowSpec

ESTIMATE_COLUMNS = [
    "end", "segment", "segment_value", "class", "recall_estimated", "recall_estimated_low",
    "recall_estimated_high", "precision_estimated",
]


def estimated_frame(
    conn: Connection,
    ctx: ModelContext,
    spec: WindowSpec,
    *,
    segment_sets: Sequence[tuple[str, ...]],
    ends=None,  # type: ignore[no-untyped-def]
) -> pd.DataFrame:
    """Estimated recall per (end, segment, segment_value, class); empty without scores."""
    return pd.DataFrame(columns=ESTIMATE_COLUMNS)
