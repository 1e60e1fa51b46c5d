"""What a notification says: one sentence per alert, and the payload of each channel (pure).

Every message says what dropped, where, by how much, on how many labelled cases, and links
to the evidence: `{dashboard_url}/alerts?model=<m>` and the classes page filtered to the
class and segment. An event's `payload` (stored in the outbox) is the alert as it was at the
state change; rendering happens at delivery so that the dashboard URL is the current one.

Delivery is at least once (a receiver that answers after our timeout has the event although
we retry it), so every message carries `event_id(event)`: the same key on every attempt, from
any process, for the same notification; receivers de-duplicate on it.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from typing import Any
from urllib.parse import urlencode

from monitor.store.windows import OVERALL
from monitor.timeutil import format_duration, to_iso


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
    base = dashboard_url.rstrip("/")
    query = {"model": record["model"], "class": record["class"]}
    if record.get("segment") not in (None, OVERALL):
        query.update(segment=record["segment"], segment_value=record["segment_value"])
    return {
        "alerts": f"{base}/alerts?{urlencode({'model': record['model']})}",
        "evidence": f"{base}/classes?{urlencode(query)}",
    }


def title(event: dict[str, Any]) -> str:
    record = event["payload"]
    status = "RESOLVED" if event["kind"] == "resolved" else event["severity"].upper()
    prefix = {"reminder": "still firing: ", "escalated": "escalated: "}.get(event["kind"], "")
    if is_incident(record):
        return (f"[{status}] {prefix}{record['model']}: incident {record['incident_id']}, {record['metric']} of "
                f"{record['class']}, cause {where(record)} ({len(record.get('explains') or [])} series)")
    return (f"[{status}] {prefix}{record['model']}: {record['metric']} of {record['class']} "
            f"{where(record)}")


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
            "summary": title(event),
            "description": record["message"],
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
        alert["annotations"].update(explains=", ".join(record.get("explains") or []),
                                    evidence="; ".join(record.get("evidence") or []))
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


def slack_payload(event: dict[str, Any], dashboard_url: str) -> dict[str, Any]:
    record = event["payload"]
    link = links(record, dashboard_url)
    text = f"*{title(event)}*\n{record['message']}\n<{link['evidence']}|Evidence> | <{link['alerts']}|All alerts>"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def email_bodies(event: dict[str, Any], dashboard_url: str) -> tuple[str, str, str]:
    """(subject, plain text, HTML)."""
    record = event["payload"]
    link = links(record, dashboard_url)
    subject = title(event)
    facts = [
        ("Model", record["model"]), ("Rule", record["rule"]), ("Class", record["class"]),
        ("Where", where(record)), ("Value", _num(record.get("value"))),
        ("Reference", _num(record.get("reference_value"))),
        ("95% interval", f"{_num(record.get('low'))} - {_num(record.get('high'))}"),
        ("Labelled cases", str(int(record.get("support") or 0))),
        ("Started (data time)", to_iso(record.get("started_at")) or "-"),
        ("Fired (data time)", to_iso(record.get("fired_at")) or "-"),
        ("Resolved (data time)", to_iso(record.get("resolved_at")) or "-"),
    ]
    if is_incident(record):
        facts[1:2] = [("Incident", str(record["incident_id"])), ("Cause", where(record))]
        facts += [("Explains", ", ".join(record.get("explains") or [])),
                  ("Evidence", "; ".join(record.get("evidence") or []) or "-")]
    plain = "\n".join([record["message"], "", *(f"{k}: {v}" for k, v in facts), "",
                       f"Evidence: {link['evidence']}", f"All alerts: {link['alerts']}", ""])
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts)
    body = (f"<p>{html.escape(record['message'])}</p><table>{rows}</table>"
            f"<p><a href=\"{html.escape(link['evidence'])}\">Evidence</a> | "
            f"<a href=\"{html.escape(link['alerts'])}\">All alerts</a></p>")
    return subject, plain, f"<html><body>{body}</body></html>"
