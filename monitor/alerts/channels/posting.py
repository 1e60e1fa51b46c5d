"""JSON over HTTP POST, shared by the webhook and Slack channels."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from monitor.alerts.channels import TransportError
from monitor.config import Channel

# Worth retrying: the receiver is overloaded or timed out, not wrong about our request.
TRANSIENT_STATUS = {408, 425, 429}
# We only quote the start of an error answer; a receiver that streams an endless body must
# not keep a sender thread reading it.
MAX_ANSWER_BYTES = 4096


def post_json(channel: Channel, body: dict[str, Any], *, event_id: str) -> None:
    """POST `body` with `Idempotency-Key: event_id`; raises TransportError unless 2xx."""
    assert channel.url is not None
    headers = {"User-Agent": "classifier-monitor", **channel.headers, "Idempotency-Key": event_id}
    try:
        response = requests.post(channel.url, json=body, timeout=channel.timeout, headers=headers,
                                 stream=True)
    except requests.exceptions.InvalidURL as error:
        raise TransportError(without_secrets(f"invalid url {channel.url!r}: {error}", channel.url),
                             permanent=True) from error
    except requests.RequestException as error:
        # timeout, refused, DNS: the receiver did not answer, so more sends in this pass
        # would only wait for the same timeout
        raise TransportError(without_secrets(f"{type(error).__name__}: {error}", channel.url),
                             channel_down=True) from error
    with response:
        if 200 <= response.status_code < 300:
            return
        try:
            detail = response.raw.read(MAX_ANSWER_BYTES, decode_content=True)[:200]
            text = detail.decode("utf-8", "replace").strip()
        except (requests.RequestException, OSError, ValueError):
            text = "(no readable answer)"
    permanent = 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_STATUS
    raise TransportError(f"HTTP {response.status_code}: {text}", permanent=permanent)


def without_secrets(text: str, url: str) -> str:
    """`text`, an error that may quote `url`, with the URL's credentials, path and query shown
    as *** (a Slack webhook's path is its token): the error is stored with the delivery and
    shown on the dashboard. The scheme, host and port stay, to say which receiver failed."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]  # host and port, without any user:password@
    text = text.replace(url, f"{parts.scheme}://{netloc}/***")
    secrets = [parts.path + (f"?{parts.query}" if parts.query else ""), parts.path, parts.query,
               parts.password or ""]
    for secret in sorted({s for s in secrets if s and s != "/"}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
