"""What `monitor consume` needs from a broker: the `Source` interface.

A source hands out batches of deliveries from a durable, shared subscription (queue semantics:
each message goes to one of the processes reading it) and settles them after the batch is
committed: `ack` (done), `term` (a poison message: never deliver it again), `nak` (deliver it
again, to anyone, later). A delivery not settled in time (the process died) is delivered
again by the broker; the consumer skips what it already stored by the prediction id, so counts
stay exactly-once. The interface is synchronous and broker-neutral so that another broker
(Kafka: a consumer group, offsets committed after the database) can implement it; NATS
JetStream is `monitor.stream.jetstream`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("predictions", "labels")


class StreamError(RuntimeError):
    """The broker cannot be used as configured (unreachable, no JetStream, a stream that holds
    other subjects): a message for the operator, no traceback."""


@dataclass
class Delivery:
    """One message: its payload, what it holds (`kind`: predictions or labels, by subject),
    its position in the stream and when it was published (epoch seconds)."""

    data: bytes
    subject: str
    kind: str
    sequence: int
    published: float
    redelivered: bool = False
    pending: int | None = None  # messages after this one not yet delivered to anyone, if known
    handle: Any = field(default=None, repr=False)  # the broker's message object


@dataclass
class Lag:
    """How far behind the consumer (all its processes together) is."""

    pending: int  # messages in the stream not yet delivered to any process
    ack_pending: int  # delivered, not yet settled


class Source(Protocol):
    """A durable subscription to a model's predictions and labels (see the module doc)."""

    name: str  # the stream (or topic) read
    consumer: str  # the durable consumer (or group) shared by every process

    def open(self) -> None:
        """Connect; create what is missing (stream, durable consumer) or explain what is wrong
        (raises StreamError)."""

    def fetch(self, max_count: int, max_wait: float) -> list[Delivery]:
        """At most `max_count` deliveries, returning as soon as there are that many or
        `max_wait` seconds have passed (perhaps with none)."""

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Settled: never deliver these again (called after their batch committed)."""

    def term(self, deliveries: Sequence[Delivery]) -> None:
        """Poison: never deliver these again (their rejects are committed)."""

    def nak(self, deliveries: Sequence[Delivery], delay: float) -> None:
        """Not done: deliver these again, to any process, after `delay` seconds."""

    def publish(self, subject: str, payload: bytes) -> None:
        """Publish a message (the dead letters of rejected records)."""

    def lag(self) -> Lag:
        """The consumer's backlog as the broker sees it."""

    def close(self) -> None:
        """Flush what is pending to the broker and disconnect."""
