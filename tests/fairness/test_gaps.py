"""The pure fairness math: ratio intervals against statsmodels, flags on seeded groups.

Many seeds at once: each seed is one window end of the same frame, so thousands of
independent comparisons run in one vectorised call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from monitor.fairness import gaps


def test_ratio_interval_is_statsmodels_katz_log_and_log_adjusted_at_zero():
    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(1, 400, 300), rng.integers(1, 400, 300)
    x1, x2 = rng.integers(0, n1 + 1), rng.integers(0, n2 + 1)
    x1[:20], x2[20:40] = 0, 0
    low, high = gaps.ratio_interval(x1, n1, x2, n2)
    for i in range(len(n1)):
        if x1[i] == 0 and x2[i] == 0:
            assert np.isnan(low[i]) and np.isnan(high[i])
            continue
        method = "log-adjusted" if x1[i] == 0 or x2[i] == 0 else "log"
        want = confint_proportions_2indep(x1[i], n1[i], x2[i], n2[i], compare="ratio",
                                          method=method)
        assert low[i] == pytest.approx(want[0], rel=1e-9)
        assert high[i] == pytest.approx(want[1], rel=1e-9)


def _two_group_confusion(rng, seeds, positives, tpr_a, tpr_b, negatives=400):
    """Per seed (= window end): group a (larger, the reference) and group b, class 'c'."""
    parts = []
    for group, tpr, extra in (("a", tpr_a, 10), ("b", tpr_b, 0)):
        tp = rng.binomial(positives, tpr, seeds)
        fp = rng.binomial(negatives, 0.05, seeds)
        parts.append(pd.DataFrame({
            "end": np.arange(seeds), "attribute": "g", "group": group, "class": "c",
            "tp": tp, "fp": fp, "fn": positives - tp, "tn": negatives + extra - fp,
            "n_labeled": positives + negatives + extra,
        }))
    return pd.concat(parts, ignore_index=True)


def _flag_rate(confusion, metric="tpr", min_support=30):
    values = gaps.group_metrics(confusion, [metric])
    references = gaps.reference_groups(confusion)
    frame = gaps.compare_to_reference(values, references, min_support=min_support)
    assert (frame["reference_group"] == "a").all()
    return frame.loc[frame["group"] == "b", "flagged"].mean()


@pytest.mark.parametrize("positives", [30, 50, 100])
def test_equal_small_groups_are_almost_never_flagged(positives):
    rng = np.random.default_rng(positives)
    rate = _flag_rate(_two_group_confusion(rng, 20_000, positives, 0.7, 0.7))
    # a 95% interval entirely outside [0.8, 1.25] when the truth is 1: under 1% per comparison
    # (measured with these seeds: 0.025% at 30 positives, 0.015% at 50, 0% at 100)
    assert rate < 0.01
    print(f"false-flag rate, {positives} positives per group: {rate:.4%}")


def test_groups_below_min_support_are_never_flagged_even_when_far_apart():
    rng = np.random.default_rng(1)
    assert _flag_rate(_two_group_confusion(rng, 2_000, 20, 0.9, 0.1)) == 0.0


@pytest.mark.parametrize("positives, power", [(100, 0.9), (300, 0.99)])
def test_a_seeded_gap_is_flagged(positives, power):
    rng = np.random.default_rng(positives + 1)
    # group b catches the minority class half as often as group a: ratio 0.5
    assert _flag_rate(_two_group_confusion(rng, 5_000, positives, 0.7, 0.35)) > power


def test_configured_reference_group_wins_over_the_largest_and_may_be_absent():
    rng = np.random.default_rng(0)
    confusion = _two_group_confusion(rng, 3, 50, 0.7, 0.7)
    assert (gaps.reference_groups(confusion, {"g": "b"})["reference_group"] == "b").all()
    values = gaps.group_metrics(confusion)
    absent = gaps.compare_to_reference(values, gaps.reference_groups(confusion, {"g": "zzz"}))
    assert absent["reference_value"].isna().all() and absent["ratio"].isna().all()
    assert not absent["flagged"].any()


def test_a_group_without_positives_has_null_tpr_and_is_not_flagged():
    confusion = pd.DataFrame({
        "end": [0, 0], "attribute": "g", "group": ["a", "b"], "class": "c",
        "tp": [40, 0], "fp": [5, 3], "fn": [10, 0], "tn": [500, 400], "n_labeled": [555, 403],
    })
    frame = gaps.compare_to_reference(gaps.group_metrics(confusion),
                                      gaps.reference_groups(confusion))
    b = frame[frame["group"] == "b"].set_index("metric")
    assert np.isnan(b.loc["tpr", "value"]) and np.isnan(b.loc["tpr", "ratio"])
    assert b.loc["tpr", "support"] == 0 and not b.loc["tpr", "flagged"]
    assert b.loc["precision", "value"] == 0.0  # 0 of 3 selected were positive: a real 0
