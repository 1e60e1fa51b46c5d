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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.config_errors import format_validation_error
from monitor.errors import ConfigError, UnknownName
from monitor.registry import CHANNELS, DRIFT_METHODS, alert_metrics
from monitor.secrets import secret
from monitor.timeutil import parse_duration, parse_time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


__all__ = ["ConfigError"]  # defined in monitor.errors; imported from here by most callers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


Duration = Annotated[str, Field(description="a duration such as '1h' or '7d'")]


def _check_duration(value: str | int) -> str:
    parse_duration(value)
    return str(value)


def _check_alert_metric(name: str) -> str:
    if name not in alert_metrics():
        raise UnknownName("alert metric", name, alert_metrics())
    return name


# names checked against the registries; the schema lists the names registered at import
AlertMetric = Annotated[str, AfterValidator(_check_alert_metric),
                        WithJsonSchema({"type": "string", "enum": list(alert_metrics())})]
DriftMethod = Annotated[str, AfterValidator(DRIFT_METHODS.check),
                        WithJsonSchema({"type": "string", "enum": list(DRIFT_METHODS.names())})]
ChannelType = Annotated[str, AfterValidator(CHANNELS.check),
                        WithJsonSchema({"type": "string", "enum": list(CHANNELS.names())})]


class PredictionSource(_Strict):
    """Where prediction logs come from and how their columns are named."""

    path: str | None = None
    id: str = "prediction_id"
    timestamp: str = "timestamp"
    prediction: str = "prediction"
    score_prefix: str = "score_"
    model_version: str = "model_version"


class LabelSource(_Strict):
    path: str | None = None
    id: str = "prediction_id"
    label: str = "label"
    timestamp: str = "label_timestamp"


class AlertRule(_Strict):
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

    _check_window = field_validator("window", "step", "repeat_interval")(_check_duration)

    @field_validator("lookback")
    @classmethod
    def _check_lookback(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)


class DriftSettings(_Strict):
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

    _check_bucket = field_validator("bucket")(_check_duration)


class FairnessSettings(_Strict):
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


class EstimationSettings(_Strict):
    """`[models.estimation]`: label-free performance estimation (docs/estimation.md)."""

    enabled: bool = True
    calibration: Literal["auto", "isotonic", "none"] = "auto"
    # raw scores whose held-out ECE on the reference exceeds this are flagged badly calibrated
    max_ece: float = Field(default=0.05, gt=0.0, lt=1.0)


class Limits(_Strict):
    """`[limits]` (every model) and `[models.limits]` (one model, overriding the global one key
    by key): what one row, request or value may be, so that no input can blind the monitor.
    docs/deployment.md ("Limits and hostile input") lists each with its reason."""

    # timestamps outside [earliest_timestamp, clock + max_future] are rejected row by row
    earliest_timestamp: str = "2000-01-01T00:00:00Z"
    max_future: str = "1d"
    # "auto": a number of 1e11 or more is epoch milliseconds (1e11 s is the year 5138);
    # "seconds": numbers are always epoch seconds (so milliseconds fall out of range)
    epoch_units: Literal["auto", "seconds"] = "auto"
    # ids, classes and versions are stored in 200-character columns: at most 200
    max_id_length: int = Field(default=200, ge=1, le=200)
    max_value_length: int = Field(default=200, ge=1, le=200)  # classes, segments, version
    max_fields: int = Field(default=1000, ge=1, le=1_000_000)  # fields (keys) of one record
    max_record_bytes: int = Field(default=1_000_000, ge=1_000, le=1_000_000_000)
    max_segment_values: int = Field(default=500, ge=1, le=1_000_000)  # per attribute
    # read side: what one request may ask for (see monitor.store.windows)
    max_window_ends: int = Field(default=20_000, ge=1)
    max_metrics_series: int = Field(default=10_000, ge=1)

    _check_future = field_validator("max_future")(_check_duration)

    @field_validator("earliest_timestamp")
    @classmethod
    def _check_earliest(cls, value: str) -> str:
        parse_time(value)
        return value

    @property
    def earliest_epoch(self) -> int:
        return parse_time(self.earliest_timestamp)

    @property
    def max_future_seconds(self) -> int:
        return parse_duration(self.max_future)


class ModelConfig(_Strict):
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
    limits: Limits = Field(default_factory=Limits)

    _check_bucket = field_validator("bucket")(_check_duration)

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


Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")


class Channel(_Strict):
    """`[[channels]]`: where alert notifications go."""

    type: ChannelType  # monitor.registry.CHANNELS
    name: str | None = None
    url: str | None = None
    severity: list[Severity] = Field(default_factory=lambda: list(SEVERITIES))
    models: list[str] | None = None
    timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    # email
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    email_from: str | None = None
    email_to: list[str] = Field(default_factory=list)
    # log
    path: str | None = None

    @model_validator(mode="after")
    def _check_channel(self) -> Channel:
        required = CHANNELS.entry(self.type).options.get("requires", ())
        if not all(getattr(self, key) for key in required):
            keys = ", ".join(required[:-1]) + " and " * (len(required) > 1) + required[-1]
            article = "an" if self.type[0] in "aeiou" else "a"
            raise ValueError(f"{article} {self.type} channel needs {keys}")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.type}:{self.url or self.smtp_host or self.path or 'stderr'}"


class SchedulerSettings(_Strict):
    interval: str = "60s"
    misfire_grace_time: str = "5m"
    notify_interval: str = "15s"

    _check = field_validator("interval", "misfire_grace_time", "notify_interval")(_check_duration)


class NotificationSettings(_Strict):
    """`[notifications]`: how hard the outbox tries (docs/alerts.md, at-least-once delivery)."""

    max_attempts: int = Field(default=12, ge=1, le=1000)  # per event and channel, timeouts count
    max_age: str = "1d"  # no retry after a failure once an event is this old
    send_budget: str = "15s"  # no send starts later than this in one pass
    per_channel: int = Field(default=4, ge=1, le=64)  # concurrent sends per channel
    lease: str = "5m"  # a claim not settled by then is taken again (> budget + 2 timeouts)
    limit: int = Field(default=100, ge=1, le=100_000)  # events claimed per pass

    _check = field_validator("max_age", "send_budget", "lease")(_check_duration)


class RetentionSettings(_Strict):
    """`[retention]`: raw predictions and labels older than both ages are deleted (aggregates
    are kept). Off while `raw_predictions` is unset. See docs/deployment.md."""

    raw_predictions: str | None = None  # e.g. "90d": raw rows older than this are deleted
    label_horizon: str = "60d"  # labels are not expected after this age

    _check = field_validator("label_horizon")(_check_duration)

    @field_validator("raw_predictions")
    @classmethod
    def _check_raw(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)


class MonitorConfig(_Strict):
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
