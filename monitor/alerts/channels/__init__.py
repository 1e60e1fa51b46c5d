"""Notification channels. One module per channel, each with `send(channel, event, config)`,
registered by type name in `monitor.registry.CHANNELS` (recipe: docs/internals.md).

A transport raises `TransportError(message, permanent=...)` when it cannot deliver:
`permanent=True` means retrying cannot help (404, 401, a refused recipient, a bad URL) and the
outbox gives up on that channel for that event; otherwise it retries with backoff.
`channel_down=True` means the receiver did not answer at all (timeout, refused connection): the
outbox sends nothing more to that channel in the same pass, since each send would wait too.
Every transport sends `monitor.alerts.channels.messages.event_id(event)` with the message, so that a
receiver can drop the copies that at-least-once delivery produces.
A message that cannot be built (`build`) fails that event on that channel permanently, with
the reason: building depends only on the event, so a retry would fail the same way.
`event` is a dict with `kind` (firing | escalated | reminder | resolved), `severity` and
`payload` (the alert record at the change, see `monitor.alerts.engine.alert_snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from monitor.config import Channel, MonitorConfig
from monitor.registry import CHANNELS

T = TypeVar("T")


class TransportError(Exception):
    """A delivery failed; `permanent` says whether a retry could succeed."""

    def __init__(self, message: str, *, permanent: bool = False, channel_down: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.channel_down = channel_down


def build(builder: Callable[..., T], *args: Any) -> T:
    """`builder(*args)`, a transport's message. Any error in it (a payload of an older
    version, a bug, text an encoder refuses) is a permanent TransportError naming it, so that
    one unbuildable event is recorded and given up on while the others go out."""
    try:
        return builder(*args)
    except Exception as error:  # noqa: BLE001 - whatever it is, retrying the same event repeats it
        raise TransportError(f"cannot build the message: {type(error).__name__}: {error}",
                             permanent=True) from error


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    """Deliver `event` through `channel` (its type's registered `send`, monitor.registry
    CHANNELS); raises TransportError on failure."""
    CHANNELS.load(channel.type)(channel, event, config)


__all__ = ["TransportError", "build", "send"]
