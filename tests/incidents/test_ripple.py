"""The narrowing test of the slice search (`_child_alone`) against independent oracles: with
equal references its likelihood-ratio statistic is the G-test of a 2x2 table (scipy), and the
ripple-or-alone choice goes to the model whose likelihood scipy's binomial says is higher."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, chi2_contingency, norm

from monitor.incidents.slices import _child_alone


def _counts(n: float, tp: float, reference: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([n], dtype=float), np.array([tp], dtype=float), np.array([n * reference], dtype=float)


def test_the_two_sample_p_value_is_the_one_sided_root_of_the_g_test() -> None:
    # child 27/53 against rest 29/45, both with reference recall 0.75
    p_value, _ = _child_alone(_counts(53, 27, 0.75), _counts(45, 29, 0.75))
    g, _, _, _ = chi2_contingency([[27, 26], [29, 16]], correction=False, lambda_="log-likelihood")
    assert np.isclose(p_value[0], norm.sf(np.sqrt(g)))
    # a child better than the rest is no narrowing
    better, _ = _child_alone(_counts(45, 29, 0.75), _counts(53, 27, 0.75))
    assert better[0] > 0.5


def _loglik(parts: list[tuple[int, int, float]]) -> float:
    return float(sum(binom.logpmf(tp, n, p) for n, tp, p in parts))


def test_a_child_that_dropped_with_its_sibling_is_a_ripple_and_one_that_dropped_alone_is_not() -> None:
    # a fault in the whole parent: the child (20/40) somewhat worse than its sibling (33/60),
    # both far below their reference 0.75: one common ratio fits better than the child alone
    # with the sibling at its reference; a child at 6/40 beside a sibling at 44/60 dropped alone
    cases = {(40, 20, 60, 33): False, (40, 6, 60, 44): True}
    for (n, tp, rest, rest_tp), alone in cases.items():
        _, prefer = _child_alone(_counts(n, tp, 0.75), _counts(rest, rest_tp, 0.75))
        ratio = (tp + rest_tp) / (0.75 * (n + rest))
        ripple = _loglik([(n, tp, ratio * 0.75), (rest, rest_tp, ratio * 0.75)])
        own = _loglik([(n, tp, tp / n), (rest, rest_tp, 0.75)])
        assert bool(prefer[0]) is alone is (own > ripple)
