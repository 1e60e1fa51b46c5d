"""`[[models.alerts]]`: one alert rule's keys (docs/alerts.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from monitor.settings.base import AlertMetric, DriftMethod, Strict, check_duration


class AlertRule(Strict):
    """One alert rule (`[[models.alerts]]`). See docs/alerts.md for the semantics."""

    name: str
    metric: AlertMetric = "recall"  # monitor.registry.METRICS (those with an alert source)
    classes: Literal["minority", "all"] | list[str] = "minority"
    segments: list[str] | Literal["all"] = "all"
    window: str = "7d"
    step: str = "1d"
    min_support: int = Field(default=30, ge=1)
    min_drop: float = Field(default=0.10, ge=0.0, le=1.0)
    floor: float | None = Field(default=None, ge=0.0, le=1.0)
    fdr: float = Field(default=0.02, gt=0.0, lt=1.0)
    test_margin: float = Field(default=0.0, ge=0.0, le=1.0)  # drop tested against this share of min_drop
    pending_evaluations: int = Field(default=1, ge=1)
    resolve_evaluations: int = Field(default=2, ge=1)
    resolve_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    repeat_interval: str = "1d"
    critical_drop: float = Field(default=0.30, ge=0.0, le=1.0)
    critical_fires_at_once: bool = True  # a sure collapse skips the pending period
    # share of the eventual label coverage a window needs before it may fire a warning or
    # resolve (early labels are few and noisy; a sure collapse may fire before)
    settled_coverage: float = Field(default=0.9, ge=0.0, le=1.0)
    lookback: str | None = None  # first evaluation reaches this far back (default: label_horizon)
    enabled: bool = True
    # drift rules
    features: list[str] | Literal["all"] = "all"
    method: DriftMethod | None = None  # default js
    # fairness rules
    fairness_metric: str = "tpr"

    _check_window = field_validator("window", "step", "repeat_interval")(check_duration)

    @field_validator("lookback")
    @classmethod
    def _check_lookback(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)
