"""The strict base model of every config table and the checked field types it shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from monitor.errors import UnknownName
from monitor.registry import CHANNELS, DRIFT_METHODS, alert_metrics
from monitor.timeutil import parse_duration


class Strict(BaseModel):
    """Unknown keys are errors (a misspelt key would otherwise be ignored silently)."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


Duration = Annotated[str, Field(description="a duration such as '1h' or '7d'")]


def check_duration(value: str | int) -> str:
    parse_duration(value)
    return str(value)


def check_alert_metric(name: str) -> str:
    if name not in alert_metrics():
        raise UnknownName("alert metric", name, alert_metrics())
    return name


# names checked against the registries; the schema lists the names registered at import
AlertMetric = Annotated[str, AfterValidator(check_alert_metric),
                        WithJsonSchema({"type": "string", "enum": list(alert_metrics())})]
DriftMethod = Annotated[str, AfterValidator(DRIFT_METHODS.check),
                        WithJsonSchema({"type": "string", "enum": list(DRIFT_METHODS.names())})]
ChannelType = Annotated[str, AfterValidator(CHANNELS.check),
                        WithJsonSchema({"type": "string", "enum": list(CHANNELS.names())})]
