"""Notification channels. One module per channel, each with `send(channel, event, config)`.

A transport raises `TransportError(message, permanent=...)` when it cannot deliver:
`permanent=True` means retrying cannot help (404, 401, a refused recipient, a bad URL) and the
outbox gives up on that channel for that event; otherwise it retries with backoff.
`channel_down=True` means the receiver did not answer at all (timeout, refused connection): the
outbox sends nothing more to that channel in the same pass, since each send would wait too.
Every transport sends `monitor.alerts.messages.event_id(event)` with the message, so that a
receiver can drop the copies that at-least-once delivery produces.
`event` is a dict with `kind` (firing | escalated | reminder | resolved), `severity` and
`payload` (the alert record at the change, see `monitor.alerts.engine.alert_snapshot`).
"""

from __future__ import annotations

from typing import Any

from monitor.config import Channel, MonitorConfig


class TransportError(Exception):
    """A delivery failed; `permanent` says whether a retry could succeed."""

    def __init__(self, message: str, *, permanent: bool = False, channel_down: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.channel_down = channel_down


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    """Deliver `event` through `channel`; raises TransportError on failure."""
    if channel.type == "webhook":
        from monitor.alerts.channels import webhook as module
    elif channel.type == "slack":
        from monitor.alerts.channels import slack as module  # type: ignore[no-redef]
    elif channel.type == "email":
        from monitor.alerts.channels import email as module  # type: ignore[no-redef]
    else:
        from monitor.alerts.channels import log as module  # type: ignore[no-redef]
    module.send(channel, event, config)


__all__ = ["TransportError", "send"]
