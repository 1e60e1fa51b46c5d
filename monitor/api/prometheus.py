"""`GET /metrics`: the monitor's current view in Prometheus text format.

A custom collector reads the database on every scrape, so all gunicorn workers answer the same
and nothing is kept in process memory. For each configured model it reports the latest
complete window (`WINDOW` long, ending at a `STEP` boundary no later than now and no later than
the first boundary after the newest data):

- `classifier_monitor_recall`, `_precision`, `_recall_low`, `_recall_high`, `_support`
  {model, window, class, segment, segment_value}: one-vs-rest, per series (overall `*`).
- `classifier_monitor_label_coverage`, `_predictions`, `_labeled` {model, window, segment,
  segment_value}.
- `classifier_monitor_drift` {model, window, feature, method}: the largest value over the
  series; `classifier_monitor_drift_detected` {model, window, feature}: 1 if any series drifted.
- `classifier_monitor_alert_firing` {model, rule, class, segment, segment_value}: 1 per firing
  alert; `classifier_monitor_alerts` {model, state}: number of alerts per state.
- `classifier_monitor_window_end_timestamp_seconds` {model}; `classifier_monitor_last_ingest_
  timestamp_seconds`: end of the last successful tick; `classifier_monitor_collect_errors`
  {model, part}: 1 when a part could not be computed (the rest of the scrape still answers).
Null rates (a zero denominator, insufficient data) are left out rather than reported as 0.
Label values are escaped by prometheus_client, so hostile class or segment names stay data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from monitor.config import MonitorConfig
from monitor.context import ModelContext
from monitor.store.models import IngestRun, PredictionCount
from monitor.store.windows import WindowSpec
from monitor.timeutil import ceil_to, floor_to, now_epoch, parse_time

log = logging.getLogger("monitor.api")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW = 7 * 86400
STEP = 86400
PREFIX = "classifier_monitor_"
SERIES = ["model", "window", "segment", "segment_value"]
CLASS_SERIES = ["model", "window", "class", "segment", "segment_value"]


def latest_window_end(conn: Connection, ctx: ModelContext, now: int) -> int | None:
    """The end of the latest complete window with data for `ctx`, or None without data."""
    newest = conn.execute(
        select(func.max(PredictionCount.bucket_start)).where(PredictionCount.model_id == ctx.model_id)
    ).scalar_one_or_none()
    if newest is None:
        return None
    return min(floor_to(now, STEP), ceil_to(int(newest) + ctx.bucket, STEP))


class _Families:
    """Gauge families by name, created on first use so that each is emitted once."""

    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, documentation: str, labels: list[str], values: list[str], value: Any) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = GaugeMetricFamily(PREFIX + name, documentation, labels=labels)
        family.add_metric([str(v) for v in values], float(value))


class MonitorCollector(Collector):
    """Reads every configured model's latest window from the database at scrape time."""

    def __init__(self, config: MonitorConfig, engine: Callable[[], Engine], clock: Callable[[], int] = now_epoch) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _Families()
        now = self.clock()
        with self.engine().connect() as conn:
            self._last_ingest(conn, families)
            for model in self.config.models:
                self._model(conn, model, families, now)
            conn.rollback()
        yield from families.families.values()

    def _last_ingest(self, conn: Connection, families: _Families) -> None:
        # newest first by primary key: constant time however long the run history grows
        finished = conn.execute(
            select(IngestRun.finished_at).where(IngestRun.status == "ok").order_by(IngestRun.id.desc()).limit(1)
        ).scalar_one_or_none()
        if finished is not None:
            families.add("last_ingest_timestamp_seconds", "End of the last successful ingest tick (Unix time).",
                         [], [], parse_time(finished))

    def _model(self, conn: Connection, model: Any, families: _Families, now: int) -> None:
        from monitor.api.routes import read_context

        ctx = read_context(conn, model)
        end = latest_window_end(conn, ctx, now)
        window = f"{WINDOW // 86400}d"
        parts: list[tuple[str, Callable[[], None]]] = [("alerts", lambda: self._alerts(conn, ctx, families))]
        if end is not None:
            families.add("window_end_timestamp_seconds", "End of the window the gauges describe (Unix time).",
                         ["model"], [ctx.name], end)
            spec = WindowSpec(WINDOW, STEP, end, end)
            parts = [("metrics", lambda: self._metrics(conn, ctx, spec, window, families, now)),
                     ("drift", lambda: self._drift(conn, ctx, spec, window, families)), *parts]
        for part, compute in parts:
            failed = 0
            try:
                with conn.begin_nested():  # a failing part must not poison the scrape's transaction
                    compute()
            except Exception:  # noqa: BLE001 - one broken part must not hide the others
                log.exception("/metrics: %s of model %s failed", part, ctx.name)
                failed = 1
            families.add("collect_errors", "1 when this part of the scrape failed (see the server log).",
                         ["model", "part"], [ctx.name, part], failed)

    def _metrics(self, conn: Connection, ctx: ModelContext, spec: WindowSpec, window: str,
                 families: _Families, now: int) -> None:
        from monitor.metrics.service import metrics_frame

        frame = metrics_frame(conn, ctx, spec, as_of=now)
        if frame.empty:
            return
        for row in frame.to_dict("records"):
            labels = [ctx.name, window, row["class"], row["segment"], row["segment_value"]]
            families.add("recall", "One-vs-rest recall of the class in the window.", CLASS_SERIES, labels, row["recall"])
            families.add("recall_low", "Lower bound of the 95% Wilson interval of recall.", CLASS_SERIES, labels, row["recall_low"])
            families.add("recall_high", "Upper bound of the 95% Wilson interval of recall.", CLASS_SERIES, labels, row["recall_high"])
            families.add("precision", "One-vs-rest precision of the class in the window.", CLASS_SERIES, labels, row["precision"])
            families.add("support", "Labelled examples of the class in the window (tp + fn).", CLASS_SERIES, labels, row["support"])
        series = frame.drop_duplicates(["segment", "segment_value"])
        for row in series.to_dict("records"):
            labels = [ctx.name, window, row["segment"], row["segment_value"]]
            families.add("label_coverage", "Share of the window's predictions that have a label.", SERIES, labels, row["label_coverage"])
            families.add("predictions", "Predictions in the window.", SERIES, labels, row["n_predictions"])
            families.add("labeled", "Labelled predictions in the window.", SERIES, labels, row["n_labeled"])

    def _drift(self, conn: Connection, ctx: ModelContext, spec: WindowSpec, window: str, families: _Families) -> None:
        from monitor.drift.service import drift_frame

        frame = drift_frame(conn, ctx, spec)
        if frame.empty:
            return
        values = frame.dropna(subset=["value"]).groupby(["feature", "method"], sort=False)[["value"]].max().reset_index()
        for row in values.to_dict("records"):
            families.add("drift", "Largest drift value of the feature over the series (method label).",
                         ["model", "window", "feature", "method"], [ctx.name, window, row["feature"], row["method"]],
                         row["value"])
        drifted = frame.groupby("feature", sort=False)[["drifted"]].any().reset_index()
        for row in drifted.to_dict("records"):
            families.add("drift_detected", "1 when the feature drifted in any series and method.",
                         ["model", "window", "feature"], [ctx.name, window, row["feature"]], int(bool(row["drifted"])))

    def _alerts(self, conn: Connection, ctx: ModelContext, families: _Families) -> None:
        from monitor.alerts.service import alerts_frame

        frame = alerts_frame(conn, model=ctx.name, state="all")
        for alert_state in ("pending", "firing", "resolved"):
            count = int((frame["state"] == alert_state).sum()) if len(frame) else 0
            families.add("alerts", "Alerts of the model by state.", ["model", "state"], [ctx.name, alert_state], count)
        firing = frame.loc[frame["state"] == "firing"] if len(frame) else pd.DataFrame()
        for row in firing.to_dict("records"):
            families.add("alert_firing", "1 for each firing alert.",
                         ["model", "rule", "class", "segment", "segment_value"],
                         [ctx.name, row["rule"], _text(row["class"]), _text(row["segment"]), _text(row["segment_value"])], 1)


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def render(config: MonitorConfig, engine: Callable[[], Engine], clock: Callable[[], int] = now_epoch) -> bytes:
    """One scrape: a fresh registry with the collector, rendered as text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(config, engine, clock))
    return generate_latest(registry)
