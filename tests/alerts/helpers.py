"""Builders shared by the alert tests: a model in the database and observation rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from monitor.alerts.engine import apply_observations
from monitor.alerts.rules import classify, default_rule
from monitor.config import AlertRule, MonitorConfig, parse_config
from monitor.context import ModelContext, load_context

DAY = 86400
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def make_config(db_url: str, rules: list[dict[str, Any]] | None = None,
                channels: list[dict[str, Any]] | None = None) -> MonitorConfig:
    model: dict[str, Any] = {"name": "triage", "classes": ["routine", "urgent", "critical"],
                             "minority_classes": ["critical"], "segments": ["region"]}
    if rules:
        model["alerts"] = rules
    return parse_config({"database_url": db_url, "models": [model], "channels": channels or [],
                         "dashboard_url": "http://dash.example:8050"})


def context(engine: Engine, config: MonitorConfig) -> ModelContext:
    with engine.begin() as conn:
        return load_context(conn, config.models[0])


def observation(end_day: int, tp: int, support: int, *, segment: str = "*", value: str = "*",
                ref_tp: int = 800, ref_support: int = 1000, provisional: bool = False,
                rule: str = "minority-recall", cls: str = "critical") -> dict[str, Any]:
    return {"rule": rule, "metric": "recall", "end": T0 + end_day * DAY, "class": cls,
            "segment": segment, "segment_value": value, "successes": tp, "support": support,
            "value": np.nan, "reference_value": ref_tp / ref_support if ref_support else np.nan,
            "reference_successes": ref_tp, "reference_support": ref_support,
            "provisional": provisional}


def feed(engine: Engine, config: MonitorConfig, ctx: ModelContext, rows: list[dict[str, Any]],
         rules: list[AlertRule] | None = None, now: int = T0) -> dict[str, int]:
    """Classify `rows` and advance the series, as evaluate() does after reading the services."""
    by_name = {r.name: r for r in (rules or config.models[0].alerts or [default_rule()])}
    frame = classify(pd.DataFrame(rows), by_name)
    with engine.begin() as conn:
        last_end = int(max(r["end"] for r in rows))
        return dict(apply_observations(conn, config, ctx, by_name, frame, last_end, now=now))
