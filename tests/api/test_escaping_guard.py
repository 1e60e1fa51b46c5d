"""Data-derived strings must never reach the browser as markup: no component in the dashboard
may switch React's escaping off (the pages themselves are tested with hostile strings in
tests/dashboards and tests/e2e)."""

from __future__ import annotations

import re
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
UNSAFE = re.compile(r"dangerously_allow_html\s*=\s*True|srcDoc\s*=|__html")


def test_no_dashboard_component_renders_raw_html() -> None:
    offenders = [f"{path.relative_to(DASHBOARDS.parent)}:{number}"
                 for path in DASHBOARDS.rglob("*.py")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if UNSAFE.search(line)]
    assert list(DASHBOARDS.rglob("*.py")), "dashboards/ not found"
    assert offenders == []
