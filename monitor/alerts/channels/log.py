"""Log channel: a WARNING line on the `monitor.alerts.notify` logger, and when `path` is set
one JSON line per notification appended to that file (the webhook payload)."""

from __future__ import annotations

import json
import logging
from typing import Any

from monitor.alerts.channels import TransportError
from monitor.alerts.channels.messages import event_id, title, webhook_payload
from monitor.config import Channel, MonitorConfig

log = logging.getLogger("monitor.alerts.notify")


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    log.warning("%s - %s (event %s)", title(event), event["payload"]["message"], event_id(event))
    if not channel.path:
        return
    try:
        with config.resolve(channel.path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(webhook_payload(event, config.dashboard_url)) + "\n")
    except OSError as error:
        raise TransportError(f"cannot write {channel.path}: {error}") from error
