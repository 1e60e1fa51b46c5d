"""What a notification says: one sentence per alert, and the payload of each channel (pure).

Every message says what dropped, where, by how much, on how many labelled cases, and links
to the evidence: `{dashboard_url}/alerts?model=<m>` and the classes page filtered to the
class and segment. An event's `payload` (stored in the outbox) is the alert as it was at the
state change; rendering happens at delivery so that the dashboard URL is the current one.

Values from production data (segment values, class names) can hold any text, so what we render
shows them and never obeys them: control and direction characters are written as escapes
(`shown`), each channel's own markup is neutralised (HTML escaping for email, plain_text blocks
and `&lt;` escapes for Slack), and values are cut to fit each channel's limits while our own
sentence and links stay whole. The webhook's `labels` keep the exact values for machines.

Delivery is at least once (a receiver that answers after our timeout has the event although
we retry it), so every message carries `event_id(event)`: the same key on every attempt, from
any process, for the same notification; receivers de-duplicate on it.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from typing import Any
from urllib.parse import urlencode

from monitor.store.windows import OVERALL
from monitor.timeutil import format_duration, to_iso

# What a terminal, a mail client or Slack would obey rather than show: C0 and C1 controls (line
# breaks that forge a header or a log line, escape sequences, the bell), line and paragraph
# separators, lone surrogates (no encoder takes them) and the bidirectional controls that
# reverse the text after them (turning "0.80 below" around). Letters of any direction, emoji
# and their joiners are text and stay.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
VALUE_CHARS = 100  # a segment value or class name in a title or a Slack message
WHERE_CHARS = 160  # `segment=value` (an intersection: two of each) in a title
SUBJECT_CHARS = 250  # an email subject: one line a mail client can show
URL_CHARS = 2000  # a link browsers and the dashboard's server (4 KB request line) all take
SLACK_HEADER_CHARS = 150  # Slack refuses a header block's text beyond this (invalid_blocks)
SLACK_SECTION_CHARS = 3000  # and a section block's text beyond this


def shown(text: Any, limit: int | None = None) -> str:
    """`text` with every character of `_HIDDEN` written as its Python escape (`\\n`, `\\x1b`,
    `\\u202e`), so that it reads as one line and means what it says; cut to `limit`
    characters (an ellipsis last) when given."""
    text = _HIDDEN.sub(lambda match: ascii(match.group())[1:-1], str(text))
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text


def message_text(record: dict[str, Any], limit: int | None = None) -> str:
    """The alert's stored sentence, `shown`. With a `limit`, the data values in it are cut to
    `VALUE_CHARS` first, so that a long value does not push out what we say about it (the
    drop, the interval, the support), then the whole is cut to `limit`."""
    text = str(record["message"])
    if limit is not None:
        for value in (record.get("segment_value"), record.get("segment")):
            if value is not None and len(str(value)) > VALUE_CHARS:
                text = text.replace(str(value), shown(value, VALUE_CHARS))
    return shown(text, limit)


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def where(record: dict[str, Any]) -> str:
    if record.get("segment") in (None, OVERALL):
        return "global" if is_incident(record) else "overall"
    return f"{record['segment']}={record['segment_value']}"


def is_incident(record: dict[str, Any]) -> bool:
    """An incident's payload (`monitor.alerts.incidents.incident_snapshot`), not an alert's."""
    return record.get("incident_id") is not None


def describe(record: dict[str, Any]) -> str:
    """One sentence: what, where, by how much, on how much evidence, which window."""
    metric = record["metric"]
    window = format_duration(int(record["window"])) if record.get("window") else "?"
    end = to_iso(record.get("end") or record.get("fired_at") or record.get("started_at"))
    if metric.startswith("drift"):
        return (f"Drift of feature {record['class']!r} ({metric[6:]}) {where(record)}: "
                f"{_num(record.get('value'), 3)} above threshold {_num(record.get('reference_value'), 3)} "
                f"on {int(record.get('support') or 0)} predictions, {window} window ending {end}.")
    if metric.startswith("fairness"):
        return (f"Fairness gap in {metric[9:]} of class {record['class']!r} for {where(record)}: "
                f"{_num(record.get('value'))} vs {_num(record.get('reference_value'))} in the reference group "
                f"on {int(record.get('support') or 0)} labelled cases, {window} window ending {end}.")
    value, reference = record.get("value"), record.get("reference_value")
    drop = (reference - value) if value is not None and reference is not None else None
    cases = "labelled positives" if metric in ("recall",) else (
        "predicted positives" if metric == "precision" else "predictions (no labels yet)")
    interval = ""
    if record.get("low") is not None and record.get("high") is not None:
        interval = f" (95% CI {_num(record['low'])}-{_num(record['high'])})"
    label = "Estimated recall" if metric == "recall_estimated" else metric.capitalize()
    return (f"{label} of class {record['class']!r} {where(record)} is {_num(value)}{interval}, "
            f"{_num(drop)} below the reference {_num(reference)}, on {int(record.get('support') or 0)} "
            f"{cases}; {window} window ending {end}.")


def event_id(event: dict[str, Any]) -> str:
    """A stable key for one notification (32 hex characters).

    Derived from what the notification is about, not from the outbox row id, so that it stays
    the same across retries, senders and processes, and does not collide between two
    databases (a staging and a production monitor posting to one receiver): the series
    (model, rule, fingerprint), the incident (`started_at`), the change (`kind`, severity)
    and the window end it happened at (`data_time`)."""
    record = event["payload"]
    parts = [record["model"], record["rule"], record["fingerprint"], record.get("started_at"),
             event["kind"], event["severity"], event.get("data_time")]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def links(record: dict[str, Any], dashboard_url: str) -> dict[str, str]:
    """The alerts page of the model and the evidence (the classes page filtered to the class
    and the segment). A segment value too long for a URL (`URL_CHARS`; percent-encoding
    triples it) is left out of the filter rather than cut: a cut value would filter wrong."""
    base = dashboard_url.rstrip("/")
    query = {"model": record["model"], "class": record["class"]}
    evidence = f"{base}/classes?{urlencode(query)}"
    if record.get("segment") not in (None, OVERALL):
        query.update(segment=record["segment"], segment_value=record["segment_value"])
        filtered = f"{base}/classes?{urlencode(query)}"
        evidence = filtered if len(filtered) <= URL_CHARS else evidence
    return {"alerts": f"{base}/alerts?{urlencode({'model': record['model']})}", "evidence": evidence}


def title(event: dict[str, Any]) -> str:
    """One line (an email subject, a Slack header): the data values in it `shown` and cut."""
    record = event["payload"]
    status = "RESOLVED" if event["kind"] == "resolved" else event["severity"].upper()
    prefix = {"reminder": "still firing: ", "escalated": "escalated: "}.get(event["kind"], "")
    cls, place = shown(record["class"], VALUE_CHARS), shown(where(record), WHERE_CHARS)
    if is_incident(record):
        return (f"[{status}] {prefix}{record['model']}: incident {record['incident_id']}, {record['metric']} of "
                f"{cls}, cause {place} ({len(record.get('explains') or [])} series)")
    return f"[{status}] {prefix}{record['model']}: {record['metric']} of {cls} {place}"


def _labels(record: dict[str, Any], severity: str) -> dict[str, str]:
    return {
        "alertname": record["rule"], "model": record["model"], "metric": record["metric"],
        "class": str(record["class"]), "segment": str(record["segment"]),
        "segment_value": str(record["segment_value"]), "severity": severity,
    }


def webhook_payload(event: dict[str, Any], dashboard_url: str) -> dict[str, Any]:
    """Alertmanager's webhook shape (version 4), one alert per event, plus our links."""
    record = event["payload"]
    resolved = event["kind"] == "resolved"
    link = links(record, dashboard_url)
    labels = _labels(record, event["severity"])
    alert = {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": {
            "summary": shown(title(event)),
            "description": message_text(record),
            "value": _num(record.get("value"), 4), "reference_value": _num(record.get("reference_value"), 4),
            "low": _num(record.get("low"), 4), "high": _num(record.get("high"), 4),
            "support": str(int(record.get("support") or 0)),
            "dashboard": link["evidence"],
        },
        "startsAt": to_iso(record.get("started_at")),
        "endsAt": to_iso(record.get("resolved_at")) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": link["evidence"],
        "fingerprint": record["fingerprint"],
    }
    if is_incident(record):  # the cause, the member series it explains, the evidence
        labels["incident_id"] = str(record["incident_id"])
        alert["annotations"].update(explains=shown(", ".join(record.get("explains") or [])),
                                    evidence=shown("; ".join(record.get("evidence") or [])))
    return {
        "version": "4",
        "groupKey": f"{record['model']}/{record['rule']}/{record['fingerprint']}",
        "status": alert["status"],
        "receiver": "classifier-monitor",
        "groupLabels": {"alertname": record["rule"], "model": record["model"]},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": link["alerts"],
        "event": event["kind"],
        "event_id": event_id(event),  # also the Idempotency-Key header
        "event_time": to_iso(event.get("data_time")),  # orders events of one alert
        "alerts": [alert],
    }


def _slack_escaped(text: str) -> str:
    """Slack's rule for outside text in mrkdwn: `&`, `<`, `>` as entities, so that a value
    like `<!channel>` or `<https://elsewhere|Evidence>` is shown and not obeyed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(event: dict[str, Any], dashboard_url: str) -> dict[str, Any]:
    """A header and the sentence as `plain_text` blocks (Slack neither formats them nor parses
    mentions or links in them: a value's `*`, `~` or `<!here>` stays text), our two links as
    the only mrkdwn, and a `text` fallback (notifications) with the data escaped. Every block
    within Slack's limits, which it enforces by refusing the whole message."""
    record = event["payload"]
    link = links(record, dashboard_url)
    head = shown(title(event), SLACK_HEADER_CHARS)
    sentence = message_text(record, SLACK_SECTION_CHARS) or "-"
    refs = f"<{link['evidence']}|Evidence> | <{link['alerts']}|All alerts>"
    if len(refs) > SLACK_SECTION_CHARS:  # a dashboard_url of kilobytes: the short link only
        refs = f"<{link['alerts']}|All alerts>"
    text = f"*{_slack_escaped(head)}*\n{_slack_escaped(sentence)}\n{refs}"
    return {"text": text, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": False}},
        {"type": "section", "text": {"type": "plain_text", "text": sentence, "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": refs, "verbatim": True}},
    ]}


def email_bodies(event: dict[str, Any], dashboard_url: str) -> tuple[str, str, str]:
    """(subject, plain text, HTML). The subject is one line of at most `SUBJECT_CHARS`
    (a line break in it would be refused by the email library, or start a header); the body
    keeps every value whole, `shown`, so that no value can start a line of its own."""
    record = event["payload"]
    link = links(record, dashboard_url)
    subject = shown(title(event), SUBJECT_CHARS)
    facts = [
        ("Model", record["model"]), ("Rule", record["rule"]), ("Class", shown(record["class"])),
        ("Where", shown(where(record))), ("Value", _num(record.get("value"))),
        ("Reference", _num(record.get("reference_value"))),
        ("95% interval", f"{_num(record.get('low'))} - {_num(record.get('high'))}"),
        ("Labelled cases", str(int(record.get("support") or 0))),
        ("Started (data time)", to_iso(record.get("started_at")) or "-"),
        ("Fired (data time)", to_iso(record.get("fired_at")) or "-"),
        ("Resolved (data time)", to_iso(record.get("resolved_at")) or "-"),
    ]
    if is_incident(record):
        facts[1:2] = [("Incident", str(record["incident_id"])), ("Cause", shown(where(record)))]
        facts += [("Explains", shown(", ".join(record.get("explains") or []))),
                  ("Evidence", shown("; ".join(record.get("evidence") or [])) or "-")]
    message = message_text(record)
    plain = "\n".join([message, "", *(f"{k}: {v}" for k, v in facts), "",
                       f"Evidence: {link['evidence']}", f"All alerts: {link['alerts']}", ""])
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts)
    body = (f"<p>{html.escape(message)}</p><table>{rows}</table>"
            f"<p><a href=\"{html.escape(link['evidence'])}\">Evidence</a> | "
            f"<a href=\"{html.escape(link['alerts'])}\">All alerts</a></p>")
    return subject, plain, f"<html><body>{body}</body></html>"
