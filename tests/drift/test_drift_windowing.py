"""The drift window sums equal the core's `windowed_counts` on the same histogram table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.drift.models import HISTOGRAMS
from monitor.drift.windowing import windowed_histograms
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec, windowed_counts
from tests.drift.helpers import load, model_config
from tests.drift.test_drift_behaviour import COLORS, days

DAY = 86400


def test_drift_window_sums_equal_windowed_counts(sqlite_url):
    rng = np.random.default_rng(4)
    engine = make_engine(sqlite_url)
    spec = WindowSpec(3 * DAY, DAY)
    sets = [(), ("region",)]
    with engine.begin() as conn:
        reference = days(rng, 1, 500, first=-10)[0].drop(columns=["timestamp"])
        assert set(reference.color) <= set(COLORS)
        ctx = load(conn, model_config(["color", "size"]), reference, days(rng, 6, 300, shifted_from=4))
        ours = windowed_histograms(conn, HISTOGRAMS, model_id=ctx.model_id, spec=spec, segment_sets=sets, bucket=DAY)
        core = windowed_counts(conn, HISTOGRAMS, model_id=ctx.model_id, spec=spec, segment_sets=sets,
                               key_columns=["feature", "bin"], value_columns=["n", "total"], bucket=DAY)
    keys = ["end", "segment", "segment_value", "feature", "bin"]
    merged = pd.merge(ours, core, on=keys, how="outer", suffixes=("_drift", "_core"), indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(core) > 0
    assert (merged["n_drift"] == merged["n_core"]).all()
    assert np.allclose(merged["total_drift"], merged["total_core"])
