"""JSON over HTTP POST, shared by the webhook and Slack channels."""

from __future__ import annotations

from typing import Any

import requests

from monitor.alerts.channels import TransportError
from monitor.config import Channel

# Worth retrying: the receiver is overloaded or timed out, not wrong about our request.
TRANSIENT_STATUS = {408, 425, 429}


def post_json(channel: Channel, body: dict[str, Any]) -> None:
    assert channel.url is not None
    try:
        response = requests.post(channel.url, json=body, timeout=channel.timeout,
                                 headers={"User-Agent": "classifier-monitor", **channel.headers})
    except requests.exceptions.InvalidURL as error:
        raise TransportError(f"invalid url {channel.url!r}: {error}", permanent=True) from error
    except requests.RequestException as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error
    if 200 <= response.status_code < 300:
        return
    detail = response.text[:200].strip()
    permanent = 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_STATUS
    raise TransportError(f"HTTP {response.status_code}: {detail}", permanent=permanent)
