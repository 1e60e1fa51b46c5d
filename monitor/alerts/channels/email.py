"""Email over SMTP: multipart plain + HTML; optional implicit TLS, STARTTLS and login.

A retried event is the same message: `Message-ID` is derived from the event id (mail
clients and list servers drop a second copy with the same Message-ID) and the id itself is in
`X-Monitor-Event-Id` for filters."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from monitor.alerts.channels import TransportError, build
from monitor.alerts.channels.messages import email_bodies, event_id
from monitor.config import Channel, MonitorConfig


def build_message(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> EmailMessage:
    subject, plain, html = email_bodies(event, config.dashboard_url)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = channel.email_from or ""
    message["To"] = ", ".join(channel.email_to)
    message["Date"] = formatdate(localtime=False)
    key = event_id(event)
    message["Message-ID"] = f"<{key}@classifier-monitor>"
    message["X-Monitor-Event-Id"] = key
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return message


def _refused_for_good(error: smtplib.SMTPException) -> bool:
    """SMTP's 5xx replies are permanent, 4xx ones ("451 try again later", greylisting) are not."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
    else:
        codes = [getattr(error, "smtp_code", 550)]
    return all(int(code) >= 500 for code in codes)


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    assert channel.smtp_host is not None
    message = build(build_message, channel, event, config)
    context = ssl.create_default_context()
    try:
        if channel.smtp_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(channel.smtp_host, channel.smtp_port,
                                                    timeout=channel.timeout, context=context)
        else:
            client = smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout)
        with client:
            if channel.smtp_starttls and not channel.smtp_ssl:
                client.starttls(context=context)
            if channel.smtp_username:
                client.login(channel.smtp_username, channel.smtp_password or "")
            client.send_message(message)
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError) as error:
        raise TransportError(f"{type(error).__name__}: {error}", permanent=_refused_for_good(error)) from error
    except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, OSError) as error:
        # no answer (refused, timeout, dropped): more sends in this pass would wait the same
        raise TransportError(f"{type(error).__name__}: {error}", channel_down=True) from error
    except smtplib.SMTPException as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error
