"""A realistic data simulator for tests, benchmarks and the demo.

A triage-like classifier: several classes with a rare one (`critical`, about 3%), segments
(sex, age band, region with skewed sizes), numeric and categorical features, per-class scores
that are calibrated by construction (`Scenario(calibrated=True)`, the default: the logged
scores are the true class probabilities p(y | x) from which the true class is drawn), a
cost-weighted decision rule giving the rare class a realistic recall (`target_recall`, 0.7),
and a delayed label stream (lognormal delays with a long tail; lost, duplicated and
corrected labels). Faults inject concept drift (one subgroup's minority recall collapses)
and covariate drift (a feature shifts) from a given day.

    from monitor.simulate import Scenario, Fault, simulate, visible, write_logs, write_config

    scenario = Scenario(days=28, faults=[Fault(start_day=14)])   # south's critical recall drops
    data = simulate(scenario, seed=1)
    predictions, labels = visible(data, "2024-01-20T00:00:00Z")  # what the monitor can see
    write_logs(data, "demo", fmt="csv")
    write_config("demo", scenario)

Deterministic for a given (scenario, seed); vectorised (a million rows in a few seconds).
Command line: `python -m monitor.simulate --out DIR --days N --seed S [--fault ...]`.
"""

from monitor.simulate.files import write_config, write_logs
from monitor.simulate.generate import SimulatedData, simulate, visible
from monitor.simulate.scenario import Fault, Scenario

__all__ = [
    "Fault",
    "Scenario",
    "SimulatedData",
    "simulate",
    "visible",
    "write_config",
    "write_logs",
]
