"""Data access for the Data page's segment warnings: attributes past their value limit.

Past `limits.max_segment_values` distinct values of one attribute, ingestion stores new
values as the segment value `OTHER` ("(other)"), so a `slice_values` row with that value
means the attribute overflowed: its newest values are counted together, not apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.data import common
from dashboards.data.core import cached
from monitor.read import ledger

OTHER = ledger.OTHER_SEGMENT
DEFAULT_MAX_SEGMENT_VALUES = 500
SETTING = "limits.max_segment_values"


@dataclass(frozen=True)
class SegmentOverflow:
    model: str
    attribute: str
    limit: int

    @property
    def message(self) -> str:
        return (f"segment '{self.attribute}' has more than {self.limit} distinct values; new values are "
                f"counted as {OTHER} (setting: {SETTING})")


def segment_value_limit(model_config: Any) -> int:
    """The model's `limits.max_segment_values` (a mapping or an object), else the default."""
    limits = getattr(model_config, "limits", None)
    value = limits.get("max_segment_values") if isinstance(limits, dict) else \
        getattr(limits, "max_segment_values", None)
    return int(value) if value else DEFAULT_MAX_SEGMENT_VALUES


@cached
def segment_overflows(model: str | None) -> list[SegmentOverflow]:
    """The (model, attribute) pairs that have an `OTHER` value, for `model` (every configured
    model when None), sorted by model and attribute."""
    config = common.config()
    names = [model] if model else [m.name for m in config.models]
    known = {m.name for m in config.models}
    with common.read() as conn:
        rows = ledger.overflowed_attributes(conn, [n for n in names if n in known])
    return [SegmentOverflow(name, attribute, segment_value_limit(config.model(name))) for name, attribute in rows]
