"""Typed read of which calibration the label-free estimates used (issue 18): per window end,
the kind (`reference` or `rolling`), its id, fit span and labels (`monitor.estimation.checks`).
For the Classes page's note beside the best current recall."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.checks import TRACE_COLUMNS, calibration_trace

__all__ = ["TRACE_COLUMNS", "calibrations"]


def calibrations(conn: Connection, ctx: ModelContext, ends: Sequence[int], window: int) -> pd.DataFrame:
    """Per window end (epoch seconds): `end` plus TRACE_COLUMNS (`calibration`, `calibration_id`,
    `calibration_fit_start`, `calibration_fit_end` as epoch seconds, `calibration_labels`);
    nulls where no scored prediction was estimated."""
    return calibration_trace(conn, ctx, np.asarray(list(ends), dtype=np.int64), int(window))
