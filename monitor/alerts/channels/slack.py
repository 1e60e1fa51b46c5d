"""Slack incoming webhook: a `text` (mrkdwn) with the message and links, in one section block.

Slack's payload has no place for our fields, so the event id travels only in the
`Idempotency-Key` header (for a proxy in front of Slack; Slack itself ignores it)."""

from __future__ import annotations

from typing import Any

from monitor.alerts.channels import build
from monitor.alerts.channels.messages import event_id, slack_payload
from monitor.alerts.channels.posting import post_json
from monitor.config import Channel, MonitorConfig


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    body, key = build(slack_payload, event, config.dashboard_url), build(event_id, event)
    post_json(channel, body, event_id=key)
