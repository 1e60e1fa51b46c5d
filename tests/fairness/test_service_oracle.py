"""fairness_frame against fairlearn's MetricFrame on the raw rows of every window.

Simulated data with a subgroup fault, a group that appears only after a few days, a tiny
group without positives, intersections, and labels cut off at an `as_of` (late labels not
yet visible). Counts go to a real database; the oracle sees only raw rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.config import ModelConfig
from monitor.context import load_context
from monitor.fairness.service import fairness_frame, largest_gaps, latest_fairness
from monitor.simulate import Fault, Scenario, simulate, visible
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.timeutil import parse_time
from tests.fairness.helpers import (
    REST,
    comparison_value,
    metric_frames,
    raw_rows,
    store_counts,
    window_rows,
)

DAY = 86_400
SEGMENTS = ["sex", "age_band", "region"]
CLASSES = ["routine", "urgent", "critical"]


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    scenario = Scenario(days=10, rows_per_day=800, faults=[Fault(start_day=4)])
    data = simulate(scenario, seed=7)
    predictions, labels = visible(data, "2024-01-10T12:00:00Z")
    raw = raw_rows(predictions, labels, SEGMENTS)
    start = parse_time("2024-01-01")
    # "west" is seen only from day 3 on: windows before have no such group
    raw = raw.loc[~((raw["region"] == "west") & (raw["ts"] < start + 3 * DAY))].copy()
    # a tiny group on day 5 whose rows are never truly critical: critical tpr is null
    for day in (5, 6):
        tiny = raw.index[(raw["ts"] >= start + day * DAY) & (raw["label"] == "routine")][:3]
        raw.loc[tiny, "age_band"] = "90+"
    raw["sex&region"] = raw["sex"] + "&" + raw["region"]
    return raw


_ORACLE: dict[tuple, tuple] = {}


def _model_config() -> ModelConfig:
    return ModelConfig(name="triage", classes=CLASSES, minority_classes=["critical"],
                       segments=SEGMENTS, intersections=True)


def _compare(ours: pd.DataFrame, raw: pd.DataFrame, window: int) -> int:
    """Assert every record equals fairlearn's; return the number of records checked.

    Each group is compared with its record's reference: a named group, fixed across windows
    for a (class, attribute, metric), never the group itself, or every other group together
    ("(rest)"); both values are recomputed from the raw rows."""
    checked = 0
    named = ours[ours["reference_group"] != REST]
    assert (ours["reference_group"] != ours["group"]).all()
    assert (named.groupby(["class", "attribute", "metric"])["reference_group"].nunique() == 1).all()
    for (end_iso, cls, attribute), part in ours.groupby(["end", "class", "attribute"]):
        subset = window_rows(raw, parse_time(end_iso), window)
        if attribute not in subset.columns:
            continue  # pairs other than sex&region are checked through sex&region only
        key = (end_iso, window, cls, attribute)
        if key not in _ORACLE:  # the same windows are checked on both backends
            _ORACLE[key] = metric_frames(subset, cls, attribute)
        plain, nullable = _ORACLE[key]
        assert set(part["group"]) == set(subset[attribute].unique())
        for metric, rows in part.groupby("metric"):
            expected = nullable.by_group[metric]
            got = rows.set_index("group")["value"].reindex(expected.index)
            np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-12)
            # where fairlearn's own metric is defined it is the same number
            if metric in plain.by_group.columns:
                fair = plain.by_group[metric]
                defined = expected.notna()
                np.testing.assert_allclose(got[defined].to_numpy(float),
                                           fair[defined].to_numpy(float), rtol=1e-12)
                # where it is not, fairlearn says 0 and we say null
                assert (fair[~defined] == 0).all() and got[~defined].isna().all()
            for record in rows.itertuples(index=False):
                ref_value = comparison_value(subset, cls, attribute, record.group,
                                             record.reference_group, nullable.by_group, metric)
                want = expected[record.group]
                if np.isnan(ref_value):
                    assert np.isnan(record.reference_value) and np.isnan(record.ratio)
                    continue
                assert record.reference_value == pytest.approx(ref_value, rel=1e-12)
                if not np.isnan(want):
                    assert record.difference == pytest.approx(want - ref_value, rel=1e-12, abs=1e-15)
                if ref_value > 0 and not np.isnan(want):
                    assert record.ratio == pytest.approx(want / ref_value, rel=1e-12)
                else:
                    assert np.isnan(record.ratio)
            checked += len(rows)
    return checked


@pytest.mark.parametrize("window, step", [(7 * DAY, 3 * DAY), (DAY, 2 * DAY)])
def test_every_group_value_difference_and_ratio_equal_fairlearn(db_url, rows, window, step):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        ctx = load_context(conn, _model_config())
        store_counts(conn, ctx.model_id, rows, SEGMENTS)
    with engine.connect() as conn:
        frame = fairness_frame(conn, ctx, WindowSpec(window, step))
    engine.dispose()
    assert len(frame["end"].unique()) >= 3
    assert set(frame["attribute"]) == {"sex", "age_band", "region", "sex&age_band",
                                       "sex&region", "age_band&region"}
    checked = _compare(frame, rows, window)
    assert checked > 500
    # the edge cases were really exercised
    tiny = frame[(frame["group"] == "90+") & (frame["class"] == "critical") & (frame["metric"] == "tpr")]
    assert len(tiny) > 0 and tiny["value"].isna().all() and tiny["ratio"].isna().all()
    assert not tiny["flagged"].any()
    ends_with_west = frame.loc[frame["group"] == "west", "end"].unique()
    assert 0 < len(ends_with_west) < len(frame["end"].unique())


def test_largest_gap_equals_fairlearn_between_groups(sqlite_url, rows):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load_context(conn, _model_config())
        store_counts(conn, ctx.model_id, rows, SEGMENTS)
    window = 7 * DAY
    with engine.connect() as conn:
        gaps = largest_gaps(conn, ctx, WindowSpec(window, 3 * DAY), classes="critical,urgent",
                            attribute="region,sex&region")
    engine.dispose()
    assert len(gaps) > 0
    for record in gaps.itertuples(index=False):
        subset = window_rows(rows, parse_time(record.end), window)
        _, nullable = metric_frames(subset, record._3, record.attribute)
        assert record.difference == pytest.approx(nullable.difference()[record.metric], rel=1e-12)
        expected_ratio = nullable.ratio()[record.metric]
        if np.isnan(expected_ratio):
            assert np.isnan(record.ratio)
        else:
            assert record.ratio == pytest.approx(expected_ratio, rel=1e-12)
        assert record.value_max == pytest.approx(nullable.group_max()[record.metric])
        assert record.value_min == pytest.approx(nullable.group_min()[record.metric])


def test_the_seeded_subgroup_gap_is_flagged(sqlite_url):
    scenario = Scenario(days=10, rows_per_day=3000, faults=[Fault(start_day=5)])
    data = simulate(scenario, seed=11)
    raw = raw_rows(*visible(data, "2024-01-30T00:00:00Z"), SEGMENTS)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load_context(conn, _model_config())
        store_counts(conn, ctx.model_id, raw, SEGMENTS)
    with engine.connect() as conn:
        frame = fairness_frame(conn, ctx, WindowSpec(5 * DAY, DAY), classes="critical",
                               attribute="region", metric="tpr")
    engine.dispose()
    south = frame[frame["group"] == "south"].set_index("end")
    # the fault runs from day 5 (2024-01-06): the window of days 5-9 holds only fault days
    late = south.loc["2024-01-11T00:00:00Z"]
    assert late["reference_group"] in ("north", REST)
    assert late["ratio_high"] < 0.8 and bool(late["flagged"])
    # the window of days 0-4 is before the fault: not flagged
    assert not south.loc["2024-01-06T00:00:00Z", "flagged"]
    others = frame[frame["group"] != "south"]
    assert not others["flagged"].any()


def test_latest_fairness_is_the_one_window_ending_at_the_clock(sqlite_url, rows):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load_context(conn, _model_config())
        store_counts(conn, ctx.model_id, rows, SEGMENTS)
    with engine.connect() as conn:
        latest = latest_fairness(conn, ctx, window=7 * DAY, step=DAY,
                                 as_of=parse_time("2024-01-09T15:30:00Z"), attribute="region")
        every = fairness_frame(conn, ctx, WindowSpec(7 * DAY, DAY), attribute="region",
                               metric="tpr")
    engine.dispose()
    assert set(latest["end"]) == {"2024-01-09T00:00:00Z"} and set(latest["metric"]) == {"tpr"}
    same = every[every["end"] == "2024-01-09T00:00:00Z"].reset_index(drop=True)
    pd.testing.assert_frame_equal(latest.reset_index(drop=True), same)
