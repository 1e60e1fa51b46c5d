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
- `classifier_monitor_series_dropped`: samples left out by the series cap (below).
- `classifier_monitor_inbox_rows` {model, kind}, `_inbox_oldest_age_seconds` {model},
  `_aggregated_through_timestamp_seconds` {model}: HTTP writes waiting for aggregation.
- `classifier_monitor_stream_pending`, `_stream_ack_pending`, `_stream_lag_seconds`,
  `_stream_last_batch_timestamp_seconds`, `_stream_messages`, `_stream_records` {model,
  stream, consumer (, outcome)}: the stream consumers of `monitor consume` (issue 17).
Null rates (a zero denominator, insufficient data) are left out rather than reported as 0.

One scrape exports at most `[limits] max_metrics_series` samples (default MAX_SERIES), so that
a model with 100,000 segment values cannot make a scrape of tens of megabytes. The per-model
gauges (window end, alerts by state, drift per feature, collect errors) always go out; then the
overall series per class, firing alerts, and the per-segment series largest segment first,
until the cap; the rest is counted in `classifier_monitor_series_dropped`.
Label values are escaped by prometheus_client, so hostile class or segment names stay data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from monitor.config import MonitorConfig
from monitor.context import ModelContext
from monitor.read import alerts, ledger, quality
from monitor.read.context import model_context
from monitor.read.windows import latest_complete_end
from monitor.store.windows import WindowSpec
from monitor.timeutil import now_epoch

log = logging.getLogger("monitor.api")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW = 7 * 86400
STEP = 86400
PREFIX = "classifier_monitor_"
SERIES = ["model", "window", "segment", "segment_value"]
CLASS_SERIES = ["model", "window", "class", "segment", "segment_value"]
MAX_SERIES = 10_000
CLASS_GAUGES = [  # (name, documentation, column) of one metrics row per (class, series)
    ("recall", "One-vs-rest recall of the class in the window.", "recall"),
    ("recall_low", "Lower bound of the 95% Wilson interval of recall.", "recall_low"),
    ("recall_high", "Upper bound of the 95% Wilson interval of recall.", "recall_high"),
    ("precision", "One-vs-rest precision of the class in the window.", "precision"),
    ("support", "Labelled examples of the class in the window (tp + fn).", "support"),
]
SERIES_GAUGES = [  # (name, documentation, column) of one row per series
    ("label_coverage", "Share of the window's predictions that have a label.", "label_coverage"),
    ("predictions", "Predictions in the window.", "n_predictions"),
    ("labeled", "Labelled predictions in the window.", "n_labeled"),
]
FIRING_LABELS = ["model", "rule", "class", "segment", "segment_value"]
STREAM_GAUGES = [  # (name, documentation, column) of one stream_consumers row
    ("stream_pending", "Messages of the stream not yet delivered to any consumer process.", "pending"),
    ("stream_ack_pending", "Messages delivered to a consumer process and not yet acknowledged.", "ack_pending"),
    ("stream_lag_seconds", "Commit time minus publish time of the oldest message of the last batch.", "lag_seconds"),
    ("stream_last_batch_timestamp_seconds", "When the consumer last committed a batch (Unix time).", "last_batch_at"),
    ("stream_messages", "Messages the consumer committed (redeliveries count again).", "messages"),
]
OVERALL_FIRST, FIRING, SEGMENT_CLASSES, SEGMENT_SERIES = range(4)  # export order under the cap


def max_series(config: object) -> int:
    """`[limits] max_metrics_series` of the config, else MAX_SERIES (configs from before the
    `[limits]` table have none)."""
    value = getattr(getattr(config, "limits", None), "max_metrics_series", None)
    return int(value) if value else MAX_SERIES


class _Families:
    """Gauge families by name, created on first use so that each is emitted once.

    `add` exports one sample now (the small per-model gauges); `defer` queues the rows of a
    frame at a priority, and `flush` exports queued rows in priority order until `limit`
    samples are out, counting the rest in `dropped`."""

    def __init__(self, limit: int = MAX_SERIES) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}
        self.limit = limit
        self.count = 0
        self.dropped = 0
        self.queue: list[tuple[int, int, pd.DataFrame, list[str], list[tuple[str, str, str]]]] = []

    def add(self, name: str, documentation: str, labels: list[str], values: list[str], value: Any) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = GaugeMetricFamily(PREFIX + name, documentation, labels=labels)
        family.add_metric([str(v) for v in values], float(value))
        self.count += 1

    def defer(self, priority: int, frame: pd.DataFrame, labels: list[str], gauges: list[tuple[str, str, str]]) -> None:
        """Queue one sample per (row, gauge) with a value; `frame` holds the label columns
        named as in `labels` and the gauges' value columns."""
        if len(frame):
            self.queue.append((priority, len(self.queue), frame, labels, gauges))

    def flush(self) -> None:
        for _, _, frame, labels, gauges in sorted(self.queue, key=lambda item: item[:2]):
            present = frame[[column for _, _, column in gauges]].notna().to_numpy()
            per_row = present.sum(axis=1)
            fits = int(np.searchsorted(np.cumsum(per_row), max(self.limit - self.count, 0), side="right"))
            self.dropped += int(per_row[fits:].sum())
            for row in frame.iloc[:fits].to_dict("records"):
                values = [_label_value(row[label]) for label in labels]
                for name, documentation, column in gauges:
                    self.add(name, documentation, labels, values, row[column])
        self.queue = []


class MonitorCollector(Collector):
    """Reads every configured model's latest window from the database at scrape time."""

    def __init__(self, config: MonitorConfig, engine: Callable[[], Engine], clock: Callable[[], int] = now_epoch) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _Families(max_series(self.config))
        now = self.clock()
        with self.engine().connect() as conn:
            self._last_ingest(conn, families)
            self._streams(conn, families)
            _inbox(conn, self.config, families, now)  # issue 15
            for model in self.config.models:
                self._model(conn, model, families, now)
            conn.rollback()
        families.flush()
        families.add("series_dropped", "Samples left out of this scrape by [limits] max_metrics_series.",
                     [], [], families.dropped)
        yield from families.families.values()

    def _last_ingest(self, conn: Connection, families: _Families) -> None:
        finished = ledger.last_ok_ingest(conn)
        if finished is not None:
            families.add("last_ingest_timestamp_seconds", "End of the last successful ingest tick (Unix time).",
                         [], [], finished)

    def _streams(self, conn: Connection, families: _Families) -> None:
        """The stream consumers (`monitor consume`) of the configured models: backlog and counts."""
        models = [m.name for m in self.config.models if getattr(m, "stream", None) is not None]
        if not models:
            return
        from monitor.stream.status import consumers

        labels = ["model", "stream", "consumer"]
        for row in consumers(conn, models).to_dict("records"):
            values = [row["model"], row["stream"], row["consumer"]]
            for name, documentation, column in STREAM_GAUGES:
                families.add(name, documentation, labels, values, row[column])
            for outcome in ("predictions", "labels", "skipped", "rejected"):
                families.add("stream_records", "Records the consumer committed, by outcome (predictions and "
                             "labels: accepted).", [*labels, "outcome"], [*values, outcome], row[outcome])

    def _model(self, conn: Connection, model: Any, families: _Families, now: int) -> None:
        ctx = model_context(conn, model)
        end = latest_complete_end(conn, ctx, now, STEP)
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
        frame = quality.metrics(conn, ctx, spec, as_of=now)
        if frame.empty:
            return
        frame = frame.assign(model=ctx.name, window=window)
        overall = (frame["segment"] == "*").to_numpy()
        # under the cap the largest segments are kept: they are the ones worth watching
        segments = frame.loc[~overall].sort_values("n_predictions", ascending=False, kind="stable")
        series = segments.drop_duplicates(["segment", "segment_value"])
        families.defer(OVERALL_FIRST, frame.loc[overall], CLASS_SERIES, CLASS_GAUGES)
        families.defer(OVERALL_FIRST, frame.loc[overall].drop_duplicates(["segment", "segment_value"]),
                       SERIES, SERIES_GAUGES)
        families.defer(SEGMENT_CLASSES, segments, CLASS_SERIES, CLASS_GAUGES)
        families.defer(SEGMENT_SERIES, series, SERIES, SERIES_GAUGES)

    def _drift(self, conn: Connection, ctx: ModelContext, spec: WindowSpec, window: str, families: _Families) -> None:
        frame = quality.drift(conn, ctx, spec)
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
        frame = alerts.alerts(conn, model=ctx.name, state="all")
        for alert_state in ("pending", "firing", "resolved"):
            count = int((frame["state"] == alert_state).sum()) if len(frame) else 0
            families.add("alerts", "Alerts of the model by state.", ["model", "state"], [ctx.name, alert_state], count)
        if not len(frame):
            return
        firing = frame.loc[frame["state"] == "firing", ["rule", "class", "segment", "segment_value"]]
        families.defer(FIRING, firing.assign(model=ctx.name, firing=1), FIRING_LABELS,
                       [("alert_firing", "1 for each firing alert.", "firing")])


# -- issue 15: the write inbox (monitor.ingest.inbox) --
def _inbox(conn: Connection, config: MonitorConfig, families: _Families, now: int) -> None:
    """`inbox_rows` {model, kind}, `inbox_oldest_age_seconds` {model} and
    `aggregated_through_timestamp_seconds` {model} (every record received before it is
    aggregated; now when nothing is queued)."""
    from monitor.ingest.inbox import queue_depths

    depths = queue_depths(conn)
    for model in config.models:
        oldest = None
        for kind in ("predictions", "labels"):
            rows, received = depths.get((model.name, kind), (0, None))
            families.add("inbox_rows", "Rows of HTTP writes waiting in the inbox for aggregation.",
                         ["model", "kind"], [model.name, kind], rows)
            if received is not None:
                oldest = received if oldest is None else min(oldest, received)
        age = 0.0 if oldest is None else max(now - oldest / 1e6, 0.0)
        families.add("inbox_oldest_age_seconds", "Age of the oldest row waiting in the inbox (0 when empty).",
                     ["model"], [model.name], age)
        families.add("aggregated_through_timestamp_seconds",
                     "Every record received before this time is aggregated (Unix time).",
                     ["model"], [model.name], now if oldest is None else oldest // 1_000_000)


def _label_value(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def render(config: MonitorConfig, engine: Callable[[], Engine], clock: Callable[[], int] = now_epoch) -> bytes:
    """One scrape: a fresh registry with the collector, rendered as text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(config, engine, clock))
    return generate_latest(registry)
