"""`monitor.toml`: strict parsing and validation (docs/contract.md §2).

Found via `--config PATH`, else `$MONITOR_CONFIG`, else `./monitor.toml`;
`$MONITOR_DATABASE_URL` overrides `database_url`. Unknown keys and bad values are errors
(`ConfigError`) whose message names the key. Relative paths are resolved against the config
file's folder. Nothing happens at import time.

Names of drift methods, channel types and alert metrics are checked against the registries
of `monitor.registry` (a new entry there is accepted here, and listed in the JSON schema and
in the error for an unknown name); `[models.drift]` has one threshold key per drift method.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from monitor.config_errors import format_validation_error
from monitor.errors import ConfigError
from monitor.registry import DRIFT_METHODS
from monitor.secrets import secret
from monitor.settings.base import Duration, Strict, check_duration
from monitor.settings.delivery import (
    SEVERITIES,
    Channel,
    NotificationSettings,
    RetentionSettings,
    SchedulerSettings,
    Severity,
)
from monitor.settings.incidents import IncidentSettings
from monitor.settings.limits import Limits
from monitor.settings.rules import AlertRule
from monitor.settings.stream import StreamSettings
from monitor.timeutil import parse_duration, parse_time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# ConfigError is defined in monitor.errors and the tables in monitor.settings; most callers
# import them from here
__all__ = ["SEVERITIES", "AlertRule", "Channel", "ConfigError", "Duration", "Limits", "NotificationSettings",
           "RetentionSettings", "SchedulerSettings", "Severity", "StreamSettings", "IncidentSettings"]


class PredictionSource(Strict):
    """Where prediction logs come from and how their columns are named."""

    path: str | None = None
    id: str = "prediction_id"
    timestamp: str = "timestamp"
    prediction: str = "prediction"
    score_prefix: str = "score_"
    model_version: str = "model_version"


class LabelSource(Strict):
    path: str | None = None
    id: str = "prediction_id"
    label: str = "label"
    timestamp: str = "label_timestamp"


class DriftSettings(Strict):
    """`[models.drift]`: thresholds and binning for drift (docs/drift.md)."""

    thresholds: Literal["fixed", "reference"] = "fixed"
    # one fixed threshold per registered drift method (psi = 0.2, ..., chi2 = 0.01 as a
    # p-value), its default from the registration: a new method brings its own key
    for _method in DRIFT_METHODS.entries():
        __annotations__[_method.name] = "float"  # noqa: F821 - the class body's annotations
        locals()[_method.name] = Field(default=_method.options["threshold"],
                                       description=f"{_method.options['label']}: drift threshold")
    del _method
    bins: int = Field(default=10, ge=2, le=100)
    fine_bins: int = Field(default=50, ge=10, le=1000)
    top_categories: int = Field(default=20, ge=1, le=1000)
    bucket: str = "1d"
    min_rows: int = Field(default=100, ge=1)
    reference_chunks: int = Field(default=10, ge=3, le=1000)
    reference_sigmas: float = Field(default=3.0, gt=0.0)

    _check_bucket = field_validator("bucket")(check_duration)


class FairnessSettings(Strict):
    """`[models.fairness]`: reference groups and tolerance band (docs/fairness.md)."""

    reference_groups: dict[str, str] = Field(default_factory=dict)  # attribute (or "a&b") -> group
    # "group": each group against one reference group per attribute (configured, else chosen
    # once from the reference data); "rest": each group against all other groups together
    reference: Literal["group", "rest"] = "group"
    tolerance: tuple[float, float] = (0.8, 1.25)  # ratio band to the reference: Aequitas' default
    min_support: int = Field(default=30, ge=1)  # denominator size both groups need to be flagged

    @field_validator("tolerance")
    @classmethod
    def _check_tolerance(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] < 1.0 < value[1]:
            raise ValueError("tolerance must be [low, high] with 0 < low < 1 < high, e.g. [0.8, 1.25]")
        return value


class EstimationSettings(Strict):
    """`[models.estimation]`: label-free performance estimation (docs/estimation.md)."""

    enabled: bool = True
    calibration: Literal["auto", "isotonic", "none"] = "auto"
    # raw scores whose held-out ECE on the reference exceeds this are flagged badly calibrated
    max_ece: float = Field(default=0.05, gt=0.0, lt=1.0)
    # rolling recalibration on matured labels (issue 18; docs/estimation.md)
    recalibrate: bool = True
    recalibration_span: Duration = "28d"  # span of mature labelled predictions fitted on
    recalibration_every: Duration = "1d"  # a new calibration at most this often
    recalibration_min_positives: int = Field(default=50, ge=1)  # per class, else the reference
    # a refit of a busier span reads a uniform sample of about this many (score, label) pairs
    recalibration_max_pairs: int = Field(default=250_000, ge=1_000)
    maturity: float = Field(default=0.95, gt=0.0, le=1.0)  # share of the usual label coverage

    _check_spans = field_validator("recalibration_span", "recalibration_every")(check_duration)


class ModelConfig(Strict):
    name: str = Field(min_length=1)
    classes: list[str] | None = None
    minority_classes: list[str] | None = None
    minority_threshold: float = Field(default=0.10, gt=0.0, lt=1.0)
    segments: list[str] = Field(default_factory=list)
    intersections: bool = False
    features: list[str] = Field(default_factory=list)
    bucket: str = "1h"
    reference: str | None = None
    reference_period: tuple[str, str] | None = None
    predictions: PredictionSource = Field(default_factory=PredictionSource)
    labels: LabelSource = Field(default_factory=LabelSource)
    alerts: list[AlertRule] = Field(default_factory=list)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    fairness: FairnessSettings = Field(default_factory=FairnessSettings)
    estimation: EstimationSettings = Field(default_factory=EstimationSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)  # [models.incidents]
    limits: Limits = Field(default_factory=Limits)
    stream: StreamSettings | None = None  # [models.stream]: `monitor consume` reads it

    _check_bucket = field_validator("bucket")(check_duration)

    @field_validator("reference_period")
    @classmethod
    def _check_period(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is not None:
            start, end = (parse_time(v) for v in value)
            if end <= start:
                raise ValueError("reference_period must be [start, end] with start < end")
        return value

    @model_validator(mode="after")
    def _check_model(self) -> ModelConfig:
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("classes needs at least two classes")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes has duplicates")
            unknown = set(self.minority_classes or []) - set(self.classes)
            if unknown:
                raise ValueError(f"minority_classes not in classes: {sorted(unknown)}")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments has duplicates")
        odd = [name for name in self.segments if "&" in name or name == "*"]
        if odd:  # `a&b` names an intersection and `*` the overall series in every output
            raise ValueError(f"segments {odd}: a segment name may not contain '&' nor be '*' (they name "
                             f"intersections and the overall series); rename the column in the input files")
        if self.reference and self.reference_period:
            raise ValueError("give either reference or reference_period, not both")
        for rule in self.alerts:  # a misspelt feature would otherwise never give a row
            absent = [] if rule.features == "all" else sorted(set(rule.features) - set(self.features))
            if rule.metric == "drift" and absent:
                raise ValueError(f"alert rule {rule.name!r}: features not in the model's features: {absent}")
            grain = parse_duration(self.drift.bucket)
            if rule.metric == "drift" and (parse_duration(rule.window) % grain or parse_duration(rule.step) % grain):
                raise ValueError(f"alert rule {rule.name!r}: drift histograms are kept per {self.drift.bucket}; "
                                 f"use a window and a step that are multiples of it "
                                 f"(got window {rule.window}, step {rule.step})")
        return self

    @property
    def bucket_seconds(self) -> int:
        return parse_duration(self.bucket)

    @property
    def segment_sets(self) -> list[tuple[str, ...]]:
        """The attribute tuples with a series of their own: one per segment, pairs if asked."""
        sets: list[tuple[str, ...]] = [(s,) for s in self.segments]
        if self.intersections:
            sets += [
                (a, b) for i, a in enumerate(self.segments) for b in self.segments[i + 1 :]
            ]
        return sets


class MonitorConfig(Strict):
    database_url: str = "sqlite:///monitor.db"
    dashboard_url: str = "http://127.0.0.1:8050"
    models: list[ModelConfig] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    limits: Limits = Field(default_factory=Limits)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_models(self) -> MonitorConfig:
        names = [m.name for m in self.models]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate model names: {sorted(dupes)}")
        # a model's [models.limits] overrides the global [limits] key by key
        for model in self.models:
            own = model.limits.model_dump(include=model.limits.model_fields_set)
            model.limits = Limits.model_validate({**self.limits.model_dump(), **own})
        return self

    def model(self, name: str | None) -> ModelConfig:
        """The model called `name`; with None, the only model (error if there are several)."""
        if name is None:
            if len(self.models) == 1:
                return self.models[0]
            raise ConfigError(
                f"several models are configured ({', '.join(m.name for m in self.models)}): pass --model"
            )
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models) or "none"
        raise ConfigError(f"unknown model {name!r} (configured: {known})")

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate


def parse_config(data: dict[str, Any], *, base_dir: Path = Path("."), source: str = "config") -> MonitorConfig:
    """Validate a parsed TOML document. Raises ConfigError with every problem named."""
    try:
        config = MonitorConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, MonitorConfig, source, data)) from None
    env_url = secret("MONITOR_DATABASE_URL")  # or the file named by $MONITOR_DATABASE_URL_FILE
    if env_url:
        config.database_url = env_url
    config.database_url = _resolve_sqlite(config.database_url, base_dir)
    return config


def _resolve_sqlite(url: str, base_dir: Path) -> str:
    """Relative SQLite paths are relative to the config file, not to the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":"):
            return prefix + str((base_dir / rest).resolve())
    return url


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return Path(env)
    return Path("monitor.toml")


def load_config(path: str | os.PathLike[str] | None = None) -> MonitorConfig:
    """Find, read and validate monitor.toml. Raises ConfigError on any problem."""
    config_path = find_config_path(path)
    if not config_path.exists():
        raise ConfigError(
            f"no configuration at {config_path}: pass --config PATH, set MONITOR_CONFIG, "
            "or run `monitor init` to write an example"
        )
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{config_path}: not valid TOML: {error}") from None
    return parse_config(data, base_dir=config_path.resolve().parent, source=str(config_path))
