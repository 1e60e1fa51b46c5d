"""The rule's decision path on simulated rows (no database): flapping and small subgroups."""

from __future__ import annotations

import pandas as pd

from monitor.alerts.offline import naive_onsets, replay, window_observations
from monitor.alerts.rules import classify, default_rule
from monitor.simulate import Fault, Scenario, simulate


def observations(scenario: Scenario, seed: int) -> pd.DataFrame:
    data = simulate(scenario, seed=seed)
    truth = data.truth.set_index("prediction_id")["label"]
    rows = pd.DataFrame({
        "ts": data.prediction_epoch,
        "prediction": data.predictions["prediction"].astype(str).to_numpy(),
        "label": truth.reindex(data.predictions["prediction_id"]).astype(str).to_numpy(),
        "region": data.predictions["region"].astype(str).to_numpy(),
    })
    reference = data.reference.astype({"region": str, "prediction": str, "label": str})
    return window_observations(rows, reference, cls="critical", segments=["region"],
                               start=scenario.start_epoch, days=scenario.days, rule=default_rule())


def test_a_flapping_series_does_not_notify_on_every_flip() -> None:
    """A mild fault keeps north's recall hovering around the alert threshold for 100 days."""
    scenario = Scenario(start="2024-01-01", days=120, rows_per_day=3000, segments=("region",), n_regions=4,
                        faults=[Fault(start_day=20, segment="region", value="north", cls="critical",
                                      recall_factor=0.5)])
    rule = default_rule()
    frame = observations(scenario, 5)
    classified = classify(frame, {rule.name: rule})
    north = classified[classified["segment_value"] == "north"].sort_values("end")
    in_breach = (north["observation"] == "breach").to_numpy()
    flips = int((in_breach[1:] != in_breach[:-1]).sum())
    timeline = replay(frame, rule)
    notified = timeline[(timeline["segment_value"] == "north")
                        & timeline["transition"].isin(["firing", "resolved"])]
    naive = naive_onsets(frame, rule.min_drop)
    assert flips >= 10
    assert len(notified) <= flips / 2
    assert len(notified[notified["transition"] == "firing"]) < (naive["segment_value"] == "north").sum()


def test_small_subgroups_with_noisy_recall_stay_insufficient_or_quiet() -> None:
    scenario = Scenario(start="2024-01-01", days=120, rows_per_day=2000, segments=("region",), n_regions=20)
    rule = default_rule()
    frame = observations(scenario, 21)
    classified = classify(frame, {rule.name: rule})
    small = classified[classified["segment_value"].isin(["region_15", "region_16", "region_17", "region_18", "region_19"])]
    assert set(small["observation"]) <= {"insufficient", "clear", "hold"}
    assert (small["observation"] == "insufficient").mean() > 0.9
    with_point_dips = small[small["successes"] / small["support"] < small["reference_value"] - rule.min_drop]
    assert len(with_point_dips) > 0  # the naive rule would have fired on these
    timeline = replay(frame, rule)
    assert timeline[timeline["transition"] == "firing"].empty
