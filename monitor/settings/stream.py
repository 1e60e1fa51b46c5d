"""`[models.stream]`: where a model's predictions and labels arrive on a message broker
(NATS JetStream), read by `monitor consume` (docs/scaling.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.settings.base import Strict, check_duration
from monitor.timeutil import parse_duration

# JetStream names (streams, durable consumers) may not hold whitespace, '.', '*', '>' or path
# separators; subjects are dot-separated tokens, wildcards allowed only as whole tokens
NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
TOKEN = re.compile(r"^[^\s.*>]+$")


def check_subject(value: str | None) -> str | None:
    if value is None:
        return None
    tokens = value.split(".")
    if not value or not all(TOKEN.match(token) for token in tokens):
        raise ValueError(f"{value!r} is not a NATS subject: dot-separated tokens without spaces or wildcards, "
                         "e.g. 'monitor.triage.predictions'")
    return value


def check_name(value: str | None) -> str | None:
    if value is not None and not NAME.match(value):
        raise ValueError(f"{value!r}: use letters, digits, '-' and '_' only (at most 200)")
    return value


def default_name(model: str) -> str:
    """A stream or consumer name made from a model name (other characters become '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", model)[:180]


class StreamSettings(Strict):
    """`[models.stream]`: the model's predictions and labels as JSON records (one object or an
    array per message) on NATS JetStream. Without the table the model has no stream."""

    type: Literal["jetstream"] = "jetstream"  # the only source so far (monitor.stream.sources)
    url: str = "nats://127.0.0.1:4222"  # several servers: comma-separated
    predictions_subject: str | None = None  # default monitor.<model>.predictions
    labels_subject: str | None = None  # default monitor.<model>.labels
    stream: str | None = None  # default MONITOR_<model>; created when missing
    durable: str = "monitor"  # the durable consumer every `monitor consume` of the model shares
    batch_size: int = Field(default=2000, ge=1, le=100_000)  # messages per batch (one transaction)
    # a batch closes this long after its fetch began (seconds, fractions allowed, or a duration)
    max_wait: float = Field(default=1.0, gt=0, le=3600)
    ack_wait: str = "60s"  # a delivered message not acknowledged by then goes to another consumer
    dead_letter_subject: str | None = None  # rejected records are also published here
    create_stream: bool = True  # create the stream when it is missing (else: an error)

    _check_durations = field_validator("ack_wait")(check_duration)
    _check_subjects = field_validator("predictions_subject", "labels_subject", "dead_letter_subject")(check_subject)
    _check_names = field_validator("stream", "durable")(check_name)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        for server in value.split(","):
            if not re.match(r"^(nats|tls|ws|wss)://[^\s/]+", server.strip()):
                raise ValueError(f"{server.strip()!r} is not a NATS server URL such as nats://127.0.0.1:4222")
        return value

    @field_validator("max_wait", mode="before")
    @classmethod
    def _wait(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct(self) -> StreamSettings:
        given = [s for s in (self.predictions_subject, self.labels_subject, self.dead_letter_subject) if s]
        if len(set(given)) != len(given):
            raise ValueError("predictions_subject, labels_subject and dead_letter_subject must differ")
        return self

    def subjects(self, model: str) -> tuple[str, str]:
        """(predictions subject, labels subject) of the model (a model name with characters a
        subject token cannot hold has them replaced by '_' in the defaults)."""
        return (self.predictions_subject or f"monitor.{default_name(model)}.predictions",
                self.labels_subject or f"monitor.{default_name(model)}.labels")

    def stream_name(self, model: str) -> str:
        return self.stream or f"MONITOR_{default_name(model)}"

    @property
    def ack_wait_seconds(self) -> float:
        return float(parse_duration(self.ack_wait))
