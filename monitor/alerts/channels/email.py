"""Email over SMTP: multipart plain + HTML; optional implicit TLS, STARTTLS and login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from monitor.alerts.channels import TransportError
from monitor.alerts.messages import email_bodies
from monitor.config import Channel, MonitorConfig


def build_message(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> EmailMessage:
    subject, plain, html = email_bodies(event, config.dashboard_url)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = channel.email_from or ""
    message["To"] = ", ".join(channel.email_to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="classifier-monitor")
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return message


def send(channel: Channel, event: dict[str, Any], config: MonitorConfig) -> None:
    assert channel.smtp_host is not None
    message = build_message(channel, event, config)
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
        raise TransportError(f"{type(error).__name__}: {error}", permanent=True) from error
    except (smtplib.SMTPException, OSError) as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error
