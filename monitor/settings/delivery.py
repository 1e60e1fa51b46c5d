"""Where alerts go and when the processes run: `[[channels]]`, `[scheduler]`,
`[notifications]` (the outbox) and `[retention]`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.registry import CHANNELS
from monitor.settings.base import ChannelType, Strict, check_duration

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")


class Channel(Strict):
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


class SchedulerSettings(Strict):
    interval: str = "60s"
    misfire_grace_time: str = "5m"
    notify_interval: str = "15s"

    _check = field_validator("interval", "misfire_grace_time", "notify_interval")(check_duration)


class NotificationSettings(Strict):
    """`[notifications]`: how hard the outbox tries (docs/alerts.md, at-least-once delivery)."""

    max_attempts: int = Field(default=12, ge=1, le=1000)  # per event and channel, timeouts count
    max_age: str = "1d"  # no retry after a failure once an event is this old
    send_budget: str = "15s"  # no send starts later than this in one pass
    per_channel: int = Field(default=4, ge=1, le=64)  # concurrent sends per channel
    lease: str = "5m"  # a claim not settled by then is taken again (> budget + 2 timeouts)
    limit: int = Field(default=100, ge=1, le=100_000)  # events claimed per pass

    _check = field_validator("max_age", "send_budget", "lease")(check_duration)


class RetentionSettings(Strict):
    """`[retention]`: raw predictions and labels older than both ages are deleted (aggregates
    are kept). Off while `raw_predictions` is unset. See docs/deployment.md."""

    raw_predictions: str | None = None  # e.g. "90d": raw rows older than this are deleted
    label_horizon: str = "60d"  # labels are not expected after this age

    _check = field_validator("label_horizon")(check_duration)

    @field_validator("raw_predictions")
    @classmethod
    def _check_raw(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)
