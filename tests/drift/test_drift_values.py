"""Drift values from stored histograms against independent oracles on the raw rows.

JS and PSI of a categorical feature must equal the formulas on raw value counts (scipy's
jensenshannon for JS); chi2 equals scipy's chi2_contingency; KS and Wasserstein computed
from the fine histograms stay within the documented tolerance of scipy on the raw values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.drift.service import drift_frame
from monitor.store.windows import WindowSpec
from tests.drift.helpers import load, model_config

DAY = 86400
START = 1_704_067_200  # 2024-01-01T00:00:00Z
KS_TOLERANCE = 0.01  # docs/drift.md
WASSERSTEIN_TOLERANCE = 0.01  # in reference standard deviations


def log_frame(rng, n, *, day, cat_probs, shift=0.0, scale=1.0, regions=("north", "south")):
    return pd.DataFrame({
        "prediction_id": [f"d{day}-{i}" for i in range(n)],
        "timestamp": pd.to_datetime(START + day * DAY + rng.integers(0, DAY, n), unit="s", utc=True)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prediction": rng.choice(["a", "b", "c"], n, p=[0.7, 0.25, 0.05]),
        "region": rng.choice(list(regions), n),
        "color": rng.choice(list(cat_probs), n, p=list(cat_probs.values())),
        "size": rng.normal(10, 2, n) * scale + shift * 2,
    })


def psi_formula(ref_counts, cur_counts):
    p, q = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.fixture
def loaded(engine):
    rng = np.random.default_rng(7)
    reference = log_frame(rng, 6000, day=-30, cat_probs={"red": 0.5, "green": 0.3, "blue": 0.2})
    reference = reference.drop(columns=["timestamp"])
    current = log_frame(rng, 3000, day=0, cat_probs={"red": 0.4, "green": 0.3, "blue": 0.2, "pink": 0.1},
                        shift=0.3, scale=1.2)
    model = model_config(["color", "size"])
    with engine.begin() as conn:
        ctx = load(conn, model, reference, [current])
    with engine.connect() as conn:
        frame = drift_frame(conn, ctx, WindowSpec(DAY, DAY))
    return reference, current, frame


def _record(frame, feature, method, segment="*", value="*"):
    rows = frame[(frame.feature == feature) & (frame.method == method) & (frame.segment == segment)
                 & (frame.segment_value == value)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def _categorical_counts(reference, current, column):
    # every category of either side its own bin ("pink" is unseen: it is alone in "other")
    levels = sorted(set(reference[column]) | set(current[column]))
    ref = reference[column].value_counts().reindex(levels, fill_value=0).to_numpy(float)
    cur = current[column].value_counts().reindex(levels, fill_value=0).to_numpy(float)
    return ref, cur


@pytest.mark.parametrize("segment_value", ["*", "south"])
def test_js_psi_and_chi2_of_a_categorical_feature_equal_the_formulas_on_raw_counts(loaded, segment_value):
    reference, current, frame = loaded
    segment = "*" if segment_value == "*" else "region"
    if segment_value != "*":
        reference = reference[reference.region == segment_value]
        current = current[current.region == segment_value]
    ref, cur = _categorical_counts(reference, current, "color")
    js = _record(frame, "color", "js", segment, segment_value)
    assert js.value == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-9)
    assert _record(frame, "color", "psi", segment, segment_value).value == pytest.approx(psi_formula(ref, cur), abs=1e-9)
    chi2 = stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue
    assert _record(frame, "color", "chi2", segment, segment_value).value == pytest.approx(chi2, rel=1e-6, abs=1e-12)
    assert js.n_current == len(current) and js.n_reference == len(reference)


def test_the_predicted_class_mix_is_a_categorical_pseudo_feature(loaded):
    reference, current, frame = loaded
    ref, cur = _categorical_counts(reference, current, "prediction")
    value = _record(frame, "__prediction__", "js").value
    assert value == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-9)


@pytest.mark.parametrize("segment_value", ["*", "north"])
def test_ks_and_wasserstein_from_histograms_are_close_to_scipy_on_raw_values(loaded, segment_value):
    reference, current, frame = loaded
    segment = "*" if segment_value == "*" else "region"
    std = reference["size"].std(ddof=0)  # the overall reference std scales every series
    if segment_value != "*":
        reference = reference[reference.region == segment_value]
        current = current[current.region == segment_value]
    ks = stats.ks_2samp(reference["size"], current["size"]).statistic
    wasserstein = stats.wasserstein_distance(reference["size"], current["size"]) / std
    assert _record(frame, "size", "ks", segment, segment_value).value == pytest.approx(ks, abs=KS_TOLERANCE)
    assert _record(frame, "size", "wasserstein", segment, segment_value).value == pytest.approx(
        wasserstein, abs=WASSERSTEIN_TOLERANCE)


def test_records_have_exactly_the_contract_columns(loaded):
    _, _, frame = loaded
    assert list(frame.columns) == ["model", "window", "end", "feature", "segment", "segment_value", "method",
                                   "value", "threshold", "drifted", "n_current", "n_reference"]
    assert set(frame["window"]) == {"1d"}
    assert set(frame["end"]) == {"2024-01-02T00:00:00Z"}
    numeric = set(frame[frame.feature == "size"]["method"])
    categorical = set(frame[frame.feature == "color"]["method"])
    assert numeric == {"psi", "js", "ks", "wasserstein"} and categorical == {"psi", "js", "chi2"}
