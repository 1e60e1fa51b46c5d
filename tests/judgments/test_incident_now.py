"""An open incident's card keeps its onset figures and says what the cause slice reads now.

The fresh demo's incident read 'region=south: 0.53 [0.41, 0.64] ... n=74' (its onset) while the
member alert on region=south stood at 0.00 [0.00, 0.10] on 34 positives."""

from __future__ import annotations

import pandas as pd

from dashboards.data.triage import with_current
from dashboards.incidents import current, incident_card


def _incident(state: str = "open") -> pd.DataFrame:
    return pd.DataFrame([{"id": 1, "model": "triage", "state": state, "severity": "critical", "class": "critical",
                          "segment": "region", "segment_value": "south", "explains": ["region=south", "*"],
                          "n_alerts": 2, "started_at": "2026-11-26T00:00:00Z", "fired_at": "2026-11-26T00:00:00Z",
                          "resolved_at": None, "value": 0.527, "reference_value": 0.71, "low": 0.41, "high": 0.64,
                          "support": 74, "evidence": [], "cause": "region=south", "href": "/subgroups"}])


def _alerts() -> pd.DataFrame:
    rows = [(4, 1, "critical", "region", "south", 0.0, 0.0, 0.1015, 34),
            (5, 1, "critical", "*", "*", 0.56, 0.51, 0.61, 383),
            (6, 1, "urgent", "region", "south", 0.3, 0.2, 0.4, 90),   # another class: not the cause
            (7, None, "critical", "region", "east", 0.5, 0.4, 0.6, 120)]
    return pd.DataFrame(rows, columns=["id", "incident_id", "class", "segment", "segment_value", "value", "low",
                                       "high", "support"])


def _text(node: object) -> str:
    children = getattr(node, "children", node)
    if isinstance(children, list):
        return " ".join(_text(c) for c in children)
    return str(children) if children is not None else ""


def test_the_member_alert_on_the_cause_slice_gives_the_current_figures() -> None:
    row = with_current(_incident(), _alerts()).iloc[0].to_dict()
    assert (row["now_value"], row["now_high"], row["now_support"]) == (0.0, 0.1015, 34)
    line = current(row)
    assert line is not None and line.startswith("now 0.00 [0.00, 0.10], n=34")
    text = _text(incident_card(row))
    assert "0.53 [0.41, 0.64]" in text and "now 0.00 [0.00, 0.10], n=34" in text


def test_no_current_line_when_resolved_unchanged_or_unknown() -> None:
    resolved = with_current(_incident("resolved"), _alerts()).iloc[0].to_dict()
    assert current(resolved) is None
    unknown = with_current(_incident(), _alerts().iloc[1:]).iloc[0].to_dict()
    assert pd.isna(unknown["now_value"]) and current(unknown) is None
    same = with_current(_incident(), _alerts().assign(value=0.527, support=74)).iloc[0].to_dict()
    assert current(same) is None
    assert current(with_current(_incident(), pd.DataFrame()).iloc[0].to_dict()) is None
