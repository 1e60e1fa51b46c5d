"""Log channel: a WARNING line on the `monitor.alerts.notify` logger, and when `path` is set
one JSON line per notification appended to that file (the webhook payload)."""

from __future__ import annotations

import json
import logging
from typing import Any

from monitor.alerts.channels import TransportError, build
from monitor.alerts.channels.messages import event_id, message_text, title, webhook_payload
from monitor.config import Channel, MonitorConfig

log = logging.getLogger("monitor.alerts.notify")


def _line(event: dict[str, Any]) -> str:
    """One log line whatever the data holds (`title` and `message_text` escape line breaks)."""
    return f"{title(event)} - {message_text(event['payload'])} (event {event_id(event)})"


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    log.warning("%s", build(_line, event))
    if not channel.path:
        return
    line = build(lambda: json.dumps(webhook_payload(event, config.dashboard_url)))
    try:
        with config.resolve(channel.path).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as error:
        raise TransportError(f"cannot write {channel.path}: {error}") from error
