"""The delayed label stream of a simulation: delays, losses, duplicates, corrections.

Rates are fractions of all predictions: `label_lost` are never labelled; `label_correction`
get a wrong label first and the truth later (strictly later label_timestamp);
`label_duplicate` (drawn among the labelled ones) get their final label sent a second time,
later. Delays are lognormal: most labels come within a day or two, a long tail takes weeks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from monitor.simulate.scenario import Scenario

DAY = 86_400


def _lognormal_seconds(
    rng: np.random.Generator, n: int, median_hours: float, sigma: float, cap_days: float
) -> np.ndarray:
    """Integer delays of at least one second, capped at `cap_days`."""
    delay = rng.lognormal(np.log(median_hours * 3600.0), sigma, n)
    return np.clip(np.ceil(delay), 1, cap_days * DAY).astype(np.int64)


def make_labels(
    scenario: Scenario,
    epochs: np.ndarray,
    truth: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label rows in label-time order: (prediction index, class index, label epoch)."""
    n = len(epochs)
    k = len(scenario.classes)
    u = rng.random(n)
    lost = u < scenario.label_lost
    corrected = ~lost & (u < scenario.label_lost + scenario.label_correction)
    labelled = ~lost
    share = scenario.label_duplicate / max(1e-12, 1.0 - scenario.label_lost)
    duplicated = labelled & (rng.random(n) < min(1.0, share))

    first_delay = _lognormal_seconds(
        rng,
        n,
        scenario.label_delay_median_hours,
        scenario.label_delay_sigma,
        scenario.label_max_delay_days,
    )
    # a correction comes a couple of days after the wrong label; a duplicate some hours later
    fix_delay = _lognormal_seconds(rng, n, 48.0, 1.0, scenario.label_max_delay_days)
    dup_delay = _lognormal_seconds(rng, n, 6.0, 1.0, scenario.label_max_delay_days)
    wrong = (truth + rng.integers(1, k, n)) % k

    first_time = epochs + first_delay
    final_time = np.where(corrected, first_time + fix_delay, first_time)

    parts_index = [np.flatnonzero(labelled), np.flatnonzero(corrected), np.flatnonzero(duplicated)]
    first_label = np.where(corrected, wrong, truth)
    parts_label = [first_label[parts_index[0]], truth[parts_index[1]], truth[parts_index[2]]]
    parts_time = [
        first_time[parts_index[0]],
        final_time[parts_index[1]],
        final_time[parts_index[2]] + dup_delay[parts_index[2]],
    ]
    index = np.concatenate(parts_index)
    label = np.concatenate(parts_label)
    label_epoch = np.concatenate(parts_time)
    if scenario.label_cutoff_days is not None:
        last = scenario.start_epoch + (scenario.days + scenario.label_cutoff_days) * DAY
        keep = label_epoch < last
        index, label, label_epoch = index[keep], label[keep], label_epoch[keep]
    order = np.argsort(label_epoch, kind="stable")
    return index[order], label[order], label_epoch[order]
