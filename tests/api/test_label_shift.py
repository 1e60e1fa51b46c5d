"""`GET /api/v1/models/<m>/label-shift` (docs/contract.md §4) against a real server, on SQLite
and PostgreSQL, on a simulated label-shift workspace (`tests.estimation.label_shift_workspace`):
the records of `monitor label-shift`, BBSE within its error of the true class mix (numpy on
the simulated truth), the warning only after the shift, and 400/404 for bad parameters."""

from __future__ import annotations

from pathlib import Path

import requests

from monitor.config import load_config
from monitor.timeutil import parse_time
from tests.estimation.label_shift_workspace import END, SHIFT, make_workspace, realized_share


def test_label_shift_records_follow_the_class_mix_and_warn_after_the_shift(db_url: str, tmp_path: Path,
                                                                            serve) -> None:  # type: ignore[no-untyped-def]
    base = serve(load_config(make_workspace(tmp_path, db_url)))
    url = f"{base}/api/v1/models/triage/label-shift"
    answer = requests.get(url, params={"segment": "*", "class": "critical"}, timeout=60)
    assert answer.status_code == 200, answer.text
    records = answer.json()
    assert [r["class"] for r in records] == ["critical"] * len(records) and len(records) == 14
    assert list(records[0])[:6] == ["model", "window", "end", "class", "segment", "segment_value"]
    by_end = {parse_time(r["end"]): r for r in records}
    for end in (SHIFT, END):
        record, realized = by_end[end], realized_share("critical", end)
        assert abs(record["prevalence_bbse"] - realized) < 3.5 * record["prevalence_bbse_se"]
        assert (record["label_shift_warning"] is not None) == (end > SHIFT)
    assert all(r["label_shift_warning"] is None for end, r in by_end.items() if end <= SHIFT)
    # per segment value, the same windows (2 segments of the scenario: sex, region)
    region = requests.get(url, params={"segment": "region", "class": "critical", "from": "2024-01-15"}, timeout=60)
    assert region.status_code == 200 and {r["segment"] for r in region.json()} == {"region"}
    assert len(region.json()) == 4
    assert requests.get(url, params={"class": "nope"}, timeout=60).status_code == 400
    assert requests.get(url, params={"segment": "nope"}, timeout=60).status_code == 400
    assert requests.get(url, params={"window": "7 days"}, timeout=60).status_code == 400
    assert requests.get(f"{base}/api/v1/models/nope/label-shift", timeout=60).status_code == 404
