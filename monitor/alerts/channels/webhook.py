"""Webhook channel: Alertmanager's webhook JSON (status, alerts with labels, annotations,
startsAt, endsAt, fingerprint), plus links to the dashboard and `event_id` (also sent as the
`Idempotency-Key` header) for receivers to de-duplicate retries."""

from __future__ import annotations

from typing import Any

from monitor.alerts.channels import build
from monitor.alerts.channels.messages import event_id, webhook_payload
from monitor.alerts.channels.posting import post_json
from monitor.config import Channel, MonitorConfig


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    body, key = build(webhook_payload, event, config.dashboard_url), build(event_id, event)
    post_json(channel, body, event_id=key)
