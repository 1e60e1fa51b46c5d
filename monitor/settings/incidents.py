"""`[models.incidents]`: how the firing recall alerts of a model are grouped into incidents
(docs/incidents.md)."""

from __future__ import annotations

from pydantic import Field, field_validator

from monitor.settings.base import Strict, check_duration


class IncidentSettings(Strict):
    """`enabled = false` lets every alert notify on its own (no grouping, nothing inhibited);
    `group_window`: how long after an open incident opened a related alert still joins it
    (default: the alert rule's window, the time a fault takes to fill it); `depth`: attribute
    combinations the slice search looks at (1 to 3)."""

    enabled: bool = True
    group_window: str | None = None
    depth: int = Field(default=2, ge=1, le=3)

    @field_validator("group_window")
    @classmethod
    def _check_window(cls, value: str | None) -> str | None:
        return None if value is None else check_duration(value)
