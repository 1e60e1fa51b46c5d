"""Window sums of `confusion_counts` per attribute value, for the fairness service.

Same contract and the same SQL as `monitor.store.windows.windowed_counts` (it reuses its
query builder: one GROUP BY per attribute set into periods of gcd(window, step), then a
cumulative sum in numpy). It exists because the core `_roll` labels its groups by position
(`MultiIndex.factorize()` drops the level names under pandas 3, so it raises
KeyError('segment_value')); fairness keeps working until that is fixed, then this module can
be replaced by a direct call. Unlike the core, groups are kept per (end) only where the
window holds counts: fairness drops empty groups anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.store.windows import SEPARATOR, WindowSpec, _series_select, segment_label
from monitor.timeutil import floor_to


def window_sums(
    conn: Connection,
    table: Table,
    *,
    model_id: int,
    spec: WindowSpec,
    segment_sets: Sequence[tuple[str, ...]],
    key_columns: Sequence[str],
    ends: np.ndarray,
) -> pd.DataFrame:
    """Sums of `n` per (end, segment, segment_value, *key_columns) for windows ending at
    `ends`; rows with a zero sum are left out."""
    columns = ["end", "segment", "segment_value", *key_columns, "n"]
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) == 0:
        return pd.DataFrame(columns=columns)
    period = math.gcd(spec.window, spec.step)
    lower, upper = int(ends.min() - spec.window), int(ends.max())
    first_period = floor_to(lower, period)
    n_periods = (upper - first_period) // period + 1
    frames = []
    for attributes in segment_sets:
        query = _series_select(table, model_id=model_id, attributes=tuple(attributes),
                               key_columns=key_columns, value_columns=["n"], period=period,
                               lower=lower, upper=upper)
        names = [f"value{i}" for i in range(len(attributes))]
        raw = pd.DataFrame(conn.execute(query).fetchall(),
                           columns=["period", *names, *key_columns, "n"])
        if raw.empty:
            continue
        labels = pd.DataFrame({"segment_value": raw[names].astype(str).agg(SEPARATOR.join, axis=1)})
        for key in key_columns:
            labels[key] = raw[key].astype(str).to_numpy()
        codes, uniques = pd.MultiIndex.from_frame(labels).factorize()
        uniques_frame = pd.DataFrame(list(uniques), columns=list(labels.columns))
        # dense (period x group) counts, cumulated: a window is a difference of two rows
        dense = np.zeros((n_periods + 1, len(uniques_frame)), dtype=np.int64)
        index = (raw["period"].to_numpy(dtype=np.int64) - first_period) // period
        np.add.at(dense, (index + 1, codes), raw["n"].to_numpy(dtype=np.int64))
        cumulative = np.cumsum(dense, axis=0)
        stop = np.clip((ends - first_period) // period, 0, n_periods)
        start = np.clip(stop - spec.window // period, 0, n_periods)
        sums = cumulative[stop] - cumulative[start]  # (ends x groups)
        end_at, group_at = np.nonzero(sums)
        frame = uniques_frame.iloc[group_at].reset_index(drop=True)
        frame.insert(0, "end", ends[end_at])
        frame.insert(1, "segment", segment_label(attributes))
        frame["n"] = sums[end_at, group_at]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
