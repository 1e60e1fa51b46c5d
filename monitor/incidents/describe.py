"""What an incident says (pure): its fingerprint and its one-paragraph message.

The message names the cause (the root-cause slice, or `global` when no small set of slices
explains the drop), the drop with its 95% interval and support, the member series it
explains, and the evidence, in that order. It states measurements, never a cause in the
causal sense (docs/incidents.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from monitor.store.windows import OVERALL
from monitor.timeutil import format_duration, to_iso

GLOBAL = OVERALL


def incident_fingerprint(model: str, cls: str, metric: str, segment: str, segment_value: str) -> str:
    """One open incident per (model, class, metric, root-cause slice): 32 hex characters."""
    parts = [model, cls, metric, segment, segment_value]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def series_name(segment: str, segment_value: str) -> str:
    """`segment=value` as in `explains`; the overall series is `*`."""
    return OVERALL if segment == OVERALL else f"{segment}={segment_value}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def incident_message(record: dict[str, Any], explains: Sequence[str], evidence: Sequence[str]) -> str:
    """`record` has metric, class, segment, segment_value, value, reference_value, low, high,
    support, window, fired_at (data time)."""
    metric, cls = str(record["metric"]), str(record["class"])
    label = metric.capitalize()
    if record["segment"] == GLOBAL:
        cause = (f"{label} of class {cls!r} dropped across the model (global: no small set of slices "
                 "explains it)")
    else:
        cause = f"{label} of class {cls!r} dropped in {series_name(record['segment'], record['segment_value'])}"
    value, reference = record.get("value"), record.get("reference_value")
    drop = reference - value if value is not None and reference is not None else None
    window = format_duration(int(record["window"])) if record.get("window") else "?"
    text = (f"{cause}: {_num(value)} (95% CI {_num(record.get('low'))}-{_num(record.get('high'))}), "
            f"{_num(drop)} below the reference {_num(reference)}, on {int(record.get('support') or 0)} "
            f"labelled positives; {window} window ending {to_iso(record.get('fired_at'))}. ")
    members = list(explains)
    text += (f"Explains {len(members)} alerting series: {', '.join(members)}." if members
             else "No alerting series.")
    if evidence:
        text += " Evidence (not a causal claim): " + "; ".join(evidence) + "."
    return text
