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


def test_ratio_interval_is_statsmodels_score_interval_and_finite_at_zero():
    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(1, 400, 300), rng.integers(1, 400, 300)
    x1, x2 = rng.integers(0, n1), rng.integers(0, n2)  # statsmodels misbehaves at x = n
    x1[:20], x2[20:40] = 0, 0
    low, high = gaps.ratio_interval(x1, n1, x2, n2)
    for i in range(len(n1)):
        if x1[i] == 0 and x2[i] == 0:
            assert np.isnan(low[i]) and np.isnan(high[i])
            continue
        want = confint_proportions_2indep(x1[i], n1[i], x2[i], n2[i], compare="ratio",
                                          method="score")
        assert low[i] == pytest.approx(max(want[0], 0.0), rel=1e-6, abs=1e-9)
        if x2[i] == 0:
            assert np.isinf(high[i])
        else:
            assert high[i] == pytest.approx(want[1], rel=1e-6)


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
    references = gaps.choose_references(confusion, [metric])
    frame = gaps.compare_to_reference(values, references, min_support=min_support)
    b = frame[frame["group"] == "b"]
    assert (b["reference_group"] == "a").all() or (b["reference_group"] == gaps.REST).all()
    return b["flagged"].mean()


@pytest.mark.parametrize("positives", [30, 50, 100])
def test_equal_small_groups_are_almost_never_flagged(positives):
    rng = np.random.default_rng(positives)
    rate = _flag_rate(_two_group_confusion(rng, 20_000, positives, 0.7, 0.7))
    # a flag-level interval entirely outside [0.8, 1.25] when the truth is 1: under 0.1% per
    # comparison (tests/judgments compares the rate with the old rule's at supports 5..500)
    assert rate < 0.001
    print(f"false-flag rate, {positives} positives per group: {rate:.4%}")


def test_groups_below_min_support_are_flagged_when_the_interval_proves_the_gap():
    """Issue 14: min_support asks small groups for more proof (99.999%), it does not hide them:
    0.1 against 0.9 on 20 positives each is flagged in about 43% of windows (before: never);
    0.6 against 0.7 almost never."""
    rng = np.random.default_rng(1)
    assert _flag_rate(_two_group_confusion(rng, 2_000, 20, 0.9, 0.1)) > 0.35
    assert _flag_rate(_two_group_confusion(rng, 2_000, 20, 0.7, 0.6)) < 0.005


@pytest.mark.parametrize("positives, power", [(100, 0.85), (300, 0.99)])
def test_a_seeded_gap_is_flagged(positives, power):
    rng = np.random.default_rng(positives + 1)
    # group b catches the minority class half as often as group a: ratio 0.5
    assert _flag_rate(_two_group_confusion(rng, 5_000, positives, 0.7, 0.35)) > power


def test_configured_reference_group_wins_and_an_absent_one_gives_way_to_the_rest():
    rng = np.random.default_rng(0)
    confusion = _two_group_confusion(rng, 3, 50, 0.7, 0.7)
    assert (gaps.choose_references(confusion, ["tpr"], {"g": "b"})["reference_group"] == "b").all()
    assert (gaps.choose_references(confusion, ["tpr"])["reference_group"] == "a").all()
    values = gaps.group_metrics(confusion)
    absent = gaps.compare_to_reference(values, gaps.choose_references(confusion, configured={"g": "zzz"}))
    # no group "zzz" in any window: every group is compared with the rest (the other group)
    assert (absent["reference_group"] == gaps.REST).all()
    a, b = (absent[absent["group"] == g].set_index(["end", "metric"]) for g in ("a", "b"))
    np.testing.assert_allclose(a["reference_value"], b["value"])
    assert not absent["flagged"].any()


def test_a_group_without_positives_has_null_tpr_and_is_not_flagged():
    confusion = pd.DataFrame({
        "end": [0, 0], "attribute": "g", "group": ["a", "b"], "class": "c",
        "tp": [40, 0], "fp": [5, 3], "fn": [10, 0], "tn": [500, 400], "n_labeled": [555, 403],
    })
    frame = gaps.compare_to_reference(gaps.group_metrics(confusion),
                                      gaps.choose_references(confusion))
    b = frame[frame["group"] == "b"].set_index("metric")
    assert np.isnan(b.loc["tpr", "value"]) and np.isnan(b.loc["tpr", "ratio"])
    assert b.loc["tpr", "support"] == 0 and not b.loc["tpr", "flagged"]
    assert b.loc["precision", "value"] == 0.0  # 0 of 3 selected were positive: a real 0


def test_the_flag_test_at_the_band_edge_agrees_with_the_bisected_interval():
    """`beyond` evaluates the score once at the band edge; it must say what the interval says."""
    from monitor.fairness.intervals import beyond

    rng = np.random.default_rng(5)
    n1, n2 = rng.integers(1, 200, 4000), rng.integers(1, 200, 4000)
    x1, x2 = rng.integers(0, n1 + 1), rng.integers(0, n2 + 1)
    z = np.where(rng.random(4000) < 0.5, gaps.Z_FLAG, gaps.Z_FLAG_SMALL)
    low, high = gaps.ratio_interval(x1, n1, x2, n2, z=z)
    # away from exact ties with the edge (bisection precision), both must agree
    clear = (np.abs(high - 0.8) > 1e-9) & (np.abs(low - 1.25) > 1e-9)
    below = beyond(x1, n1, x2, n2, 0.8, z, above=False)
    above = beyond(x1, n1, x2, n2, 1.25, z, above=True)
    np.testing.assert_array_equal(below[clear], (high < 0.8)[clear])
    np.testing.assert_array_equal(above[clear], (low > 1.25)[clear])
    assert below.sum() > 100 and above.sum() > 100
