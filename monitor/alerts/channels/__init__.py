"""Notification channels. One module per channel, each with `send(channel, event, config)`,
registered by type name in `monitor.registry.CHANNELS` (recipe: docs/internals.md).

A transport raises `TransportError(message, permanent=...)` when it cannot deliver:
`permanent=True` means retrying cannot help (404, 401, a refused recipient, a bad URL) and the
outbox gives up on that channel for that event; otherwise it retries with backoff.
`channel_down=True` means the receiver did not answer at all (timeout, refused connection): the
outbox sends nothing more to that channel in the same pass, since each send would wait too.
Every transport sends `monitor.alerts.channels.messages.event_id(event)` with the message, so that a
receiver can drop the copies that at-least-once delivery produces.
`event` is a dict with `kind` (firing | escalated | reminder | resolved), `severity` and
`payload` (the alert record at the change, see `monitor.alerts.engine.alert_snapshot`).
"""

from __future__ import annotations

from typing import Any

from monitor.config import Channel, MonitorConfig
from monitor.registry import CHANNELS


class TransportError(Exception):
    """A delivery failed; `permanent` says whether a retry could succeed."""

    def __init__(self, message: str, *, permanent: bool = False, channel_down: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.channel_down = channel_down


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    """Deliver `event` through `channel` (its type's registered `send`, monitor.registry
    CHANNELS); raises TransportError on failure."""
    CHANNELS.load(channel.type)(channel, event, config)


__all__ = ["TransportError", "send"]
