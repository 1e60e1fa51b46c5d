"""What to simulate: `Scenario` (the world and the logging process) and `Fault` (what breaks).

A scenario fixes the *model of the world*: the segment and feature distributions, the true
class probabilities p(y | x, segment) and the classifier's decision rule. Those parameters are
drawn from a private generator seeded by `Scenario.model_seed`, never by the `seed` given to
`simulate`, so two simulations of the same scenario with different seeds are two samples of
the same world (the reference and production agree) and differ only in the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from monitor.simulate.world import World

# Named values for the well-known segments; any other segment name gets `<name>_0..2`.
REGION_NAMES = ("north", "south", "east", "west")
SEGMENT_VALUES: dict[str, tuple[str, ...]] = {
    "sex": ("F", "M"),
    "age_band": ("18-34", "35-54", "55+"),
}
SEGMENT_WEIGHTS: dict[str, tuple[float, ...]] = {
    "sex": (0.5, 0.5),
    "age_band": (0.35, 0.40, 0.25),
}



@dataclass(frozen=True)
class Fault:
    """A change in the world from `start_day` (0-based day index of the scenario) on.

    - `kind="concept"`: in rows whose `segment` equals `value` (every row when `segment` is
      None), true `cls` cases get their `score_<cls>` multiplied by `recall_factor` and the
      scores renormalised; the prediction is re-derived from the scores, so the model misses
      them (the subgroup's recall of `cls` collapses and the scores are no longer calibrated).
    - `kind="covariate"`: in those rows `drift_feature` (default: the first numeric feature)
      shifts by `shift` reference standard deviations; p(y | x) is unchanged, so the class
      mix may move but the scores stay calibrated.
    - `kind="gradual"`: concept drift that builds up: in those rows the effect of the inputs
      on the true log-odds of `cls` fades linearly from nothing at `start_day` to `flatten`
      (a share) at `end_day` (default: the last day) and stays there; the logged scores and
      predictions do not change, so P(cls | score) moves away from the reference over months.
    - `kind="label_shift"`: the class mix moves, nothing else: in those rows the prior odds of
      `cls` are multiplied by `prior_factor` (rows are drawn from P(x | class) x the new
      prior by rejection), so P(x | class), P(score | class) and the confusion structure stay
      as on the reference while P(class | score) does not (black-box shift estimation holds,
      scores calibrated on the reference over- or under-state `cls`).
    Any fault with `drift_feature` set also shifts it. For a categorical feature, `shift`
    moves a fraction min(1, shift / 3) of the rows to levels drawn from the reversed level
    distribution (rare levels become common). `end_day` (exclusive) ends the fault.
    """

    start_day: int
    segment: str | None = "region"
    value: str | None = "south"
    cls: str = "critical"
    kind: Literal["concept", "covariate", "gradual", "label_shift"] = "concept"
    recall_factor: float = 0.1
    drift_feature: str | None = None
    shift: float = 1.0
    end_day: int | None = None
    flatten: float = 0.5
    prior_factor: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in ("concept", "covariate", "gradual", "label_shift"):
            raise ValueError("Fault.kind must be 'concept', 'covariate', 'gradual' or 'label_shift', "
                             f"got {self.kind!r}")
        if not self.prior_factor > 0.0:
            raise ValueError("Fault.prior_factor must be > 0")
        if not 0.0 <= self.flatten <= 1.0:
            raise ValueError("Fault.flatten must be in [0, 1]")
        if not 0.0 <= self.recall_factor <= 1.0:
            raise ValueError("Fault.recall_factor must be in [0, 1]")
        if self.segment is not None and self.value is None:
            raise ValueError("Fault.value is needed when Fault.segment is set")


@dataclass
class Scenario:
    """The world to simulate and how its logs behave. Every field has a realistic default.

    Rows: `rows_per_day` predictions on each of `days` days from `start` (UTC), timestamps
    uniform over the day. Classes: `class_priors` (default: the last class rare at 3%, the
    others sharing the rest) are the target base rates; `minority_classes` are those under
    10%. The classifier predicts a minority class when its score reaches a threshold set so
    that its recall is `target_recall` on fault-free data, else the argmax of the others.

    `calibrated=True` (the default) logs the true class probabilities as scores, so
    E[1{y = k} | score_k = s] = s without faults; label-free estimation relies on this.
    `calibrated=False` logs over-confident scores (probabilities sharpened with temperature
    `miscalibration`, the same in reference and production), for testing recalibration.

    Labels: a delay after the prediction drawn lognormal (median `label_delay_median_hours`,
    log-sd `label_delay_sigma`: a long tail of weeks, capped at `label_max_delay_days`);
    `label_lost` of the predictions are never labelled, `label_duplicate` get their final
    label sent twice, `label_correction` are first sent a wrong label and later corrected.
    `label_cutoff_days`: drop label rows later than that many days after the last day.
    """

    start: str = "2024-01-01"
    days: int = 28
    rows_per_day: int = 2000
    classes: tuple[str, ...] = ("routine", "urgent", "critical")
    class_priors: tuple[float, ...] | None = None
    target_recall: float = 0.7
    segments: tuple[str, ...] = ("sex", "age_band", "region")
    n_regions: int = 4
    missing_segment_fraction: float = 0.0
    n_numeric: int = 4
    n_categorical: int = 2
    calibrated: bool = True
    miscalibration: float = 0.6
    label_delay_median_hours: float = 24.0
    label_delay_sigma: float = 1.3
    label_max_delay_days: float = 60.0
    label_lost: float = 0.05
    label_duplicate: float = 0.03
    label_correction: float = 0.02
    label_cutoff_days: float | None = None
    reference_rows: int = 20_000
    reference_days: int = 14
    id_prefix: str = "p"
    model_version: str = "v1"
    model_seed: int = 20240101
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        self.segments = tuple(self.segments)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError("Scenario.classes needs at least two distinct classes")
        if self.class_priors is not None:
            self.class_priors = tuple(float(p) for p in self.class_priors)
            if len(self.class_priors) != len(self.classes) or min(self.class_priors) <= 0:
                raise ValueError("Scenario.class_priors needs one positive prior per class")
        if self.days < 1 or self.rows_per_day < 0:
            raise ValueError("Scenario.days must be >= 1 and rows_per_day >= 0")
        if not 1 <= self.n_regions <= 1000:
            raise ValueError("Scenario.n_regions must be in 1..1000")
        for name in (
            "label_lost",
            "label_duplicate",
            "label_correction",
            "missing_segment_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Scenario.{name} must be in [0, 1]")
        if self.label_lost + self.label_correction > 1.0:
            raise ValueError("Scenario.label_lost + label_correction must be <= 1")
        for fault in self.faults:
            if fault.cls not in self.classes:
                raise ValueError(f"Fault.cls {fault.cls!r} is not one of {self.classes}")
            if fault.segment is not None and fault.segment not in self.segments:
                raise ValueError(f"Fault.segment {fault.segment!r} is not one of {self.segments}")
            if fault.segment is not None and fault.value not in self.segment_values(fault.segment):
                raise ValueError(
                    f"Fault.value {fault.value!r} is not a value of {fault.segment}: "
                    f"{self.segment_values(fault.segment)}"
                )
            if fault.drift_feature is not None and fault.drift_feature not in self.features:
                raise ValueError(f"Fault.drift_feature {fault.drift_feature!r} is not a feature")

    # --- derived names -------------------------------------------------------------------
    @property
    def priors(self) -> np.ndarray:
        if self.class_priors is not None:
            values = np.asarray(self.class_priors, dtype=float)
            return values / values.sum()
        k = len(self.classes)
        rest = 0.97 * np.array([0.8**i for i in range(k - 1)])
        rest = 0.97 * rest / rest.sum() if k > 2 else np.array([0.97])
        if k == 3:
            rest = np.array([0.77, 0.20])
        return np.append(rest, 0.03)

    @property
    def minority_classes(self) -> list[str]:
        return [c for c, p in zip(self.classes, self.priors, strict=True) if p < 0.10]

    @property
    def numeric_features(self) -> list[str]:
        return [f"num_{i}" for i in range(self.n_numeric)]

    @property
    def categorical_features(self) -> list[str]:
        return [f"cat_{i}" for i in range(self.n_categorical)]

    @property
    def features(self) -> list[str]:
        return self.numeric_features + self.categorical_features

    @property
    def score_columns(self) -> list[str]:
        return [f"score_{c}" for c in self.classes]

    def segment_values(self, name: str) -> tuple[str, ...]:
        if name == "region":
            extra = tuple(f"region_{i:02d}" for i in range(len(REGION_NAMES), self.n_regions))
            return (REGION_NAMES + extra)[: self.n_regions]
        return SEGMENT_VALUES.get(name, tuple(f"{name}_{i}" for i in range(3)))

    def segment_weights(self, name: str) -> np.ndarray:
        """Group sizes: fixed for sex and age band, Zipf-like (skewed) for regions."""
        if name in SEGMENT_WEIGHTS:
            return np.asarray(SEGMENT_WEIGHTS[name])
        n = len(self.segment_values(name))
        weights = 1.0 / np.arange(1, n + 1) ** (0.5 if name == "region" and n <= 4 else 1.0)
        return weights / weights.sum()

    @property
    def start_epoch(self) -> int:
        from monitor.timeutil import parse_time

        return parse_time(self.start)

    @property
    def world(self) -> World:
        """The world's parameters; built once per distinct world-defining settings."""
        key = (
            self.classes,
            self.class_priors,
            self.target_recall,
            self.segments,
            self.n_regions,
            self.n_numeric,
            self.n_categorical,
            self.calibrated,
            self.miscalibration,
            self.model_seed,
        )
        if key not in _WORLDS:
            _WORLDS[key] = World.build(self)
        return _WORLDS[key]


_WORLDS: dict[tuple, World] = {}
