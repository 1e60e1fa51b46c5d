"""Drift's window sums (`windowed_counts` on the histogram table) against a brute-force sum of
the stored rows with pandas, on both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.drift.models import HISTOGRAMS
from monitor.drift.service import current_histograms
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from tests.drift.helpers import load, model_config
from tests.drift.test_drift_behaviour import COLORS, days

DAY = 86400
KEYS = ["end", "segment", "segment_value", "feature", "bin"]


def brute_force(conn, model_id: int, spec: WindowSpec, ends: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Window sums per (end, series, feature, bin) by filtering the raw rows for every end."""
    rows = pd.read_sql(HISTOGRAMS.select().where(HISTOGRAMS.c.model_id == model_id), conn)
    rows = rows[rows.feature.isin(features)]
    values = pd.read_sql("SELECT slice_id, value FROM slice_values WHERE attribute = 'region'", conn)
    rows = rows.merge(values, on="slice_id")
    parts = []
    for end in ends:
        inside = rows[(rows.bucket_start >= end - spec.window) & (rows.bucket_start < end)]
        for segment, by in (("*", None), ("region", "value")):
            keys = ["feature", "bin"] if by is None else [by, "feature", "bin"]
            sums = inside.groupby(keys, as_index=False)[["n", "total"]].sum()
            sums["segment_value"] = "*" if by is None else sums[by]
            parts.append(sums.assign(end=end, segment=segment)[[*KEYS, "n", "total"]])
    return pd.concat(parts, ignore_index=True)


def test_drift_window_sums_equal_a_brute_force_sum(db_url):
    rng = np.random.default_rng(4)
    engine = make_engine(db_url)
    spec = WindowSpec(3 * DAY, DAY)
    with engine.begin() as conn:
        reference = days(rng, 1, 500, first=-10)[0].drop(columns=["timestamp"])
        assert set(reference.color) <= set(COLORS)
        ctx = load(conn, model_config(["color", "size"]), reference, days(rng, 6, 300, shifted_from=4))
        ours = current_histograms(conn, ctx, spec, [(), ("region",)], features=["color", "size"])
        expected = brute_force(conn, ctx.model_id, spec, np.sort(ours["end"].unique()), ["color", "size"])
    engine.dispose()
    assert list(ours.columns) == [*KEYS, "n", "total"]
    assert ours["n"].dtype == np.int64 and ours["total"].dtype == np.float64
    assert set(ours["feature"]) == {"color", "size"}
    assert not ours.duplicated(KEYS).any()
    merged = ours.merge(expected, on=KEYS, how="left", suffixes=("", "_expected"), indicator=True)
    assert len(merged) == len(ours) and (merged["_merge"] == "both").sum() == len(expected) > 0
    # a (series, feature, bin) seen in the range gets every end; empty windows hold 0
    assert (merged["n"] == merged["n_expected"].fillna(0)).all()
    assert np.allclose(merged["total"], merged["total_expected"].fillna(0.0))
    assert len(ours) == ours["end"].nunique() * len(ours.drop_duplicates(KEYS[1:]))
