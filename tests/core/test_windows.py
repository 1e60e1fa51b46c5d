"""The one window implementation and the one slice-value join (monitor/store/slices.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.store.slices import OVERALL, group_codes, segment_label


def test_group_codes_number_groups_as_a_pandas_groupby_in_order_of_first_appearance():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "segment_value": rng.choice(["north", "south", "east&x", "(other)"], 500),
        "feature": rng.choice(["size", "color", "__prediction__"], 500),
        "bin": rng.integers(0, 7, 500),
    })
    codes, labels = group_codes(frame, ["segment_value", "feature", "bin"])
    expected = frame.groupby(["segment_value", "feature", "bin"], sort=False).ngroup().to_numpy()
    assert (codes == expected).all()
    pd.testing.assert_frame_equal(labels, frame.drop_duplicates().reset_index(drop=True))
    empty_codes, empty_labels = group_codes(frame.iloc[0:0], ["segment_value", "bin"])
    assert len(empty_codes) == 0 and list(empty_labels.columns) == ["segment_value", "bin"]


def test_segment_values_join_with_the_separator():
    assert segment_label(("region", "channel")) == "region&channel" and segment_label(()) == OVERALL
