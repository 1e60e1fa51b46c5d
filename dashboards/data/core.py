"""Data access for the Overview, Classes, Subgroups and Data pages.

Callbacks call these functions with a `Filters` value and get DataFrames (or small
dataclasses of DataFrames) back; they never see a connection or SQL. Everything is read
through the engine's services (`monitor.metrics.service`, `monitor.ingest.report`,
`monitor.alerts.service`) inside one read-only transaction (`common.read`).

A service that is not there yet (ImportError, NotImplementedError) or a model without data
gives an empty result whose `message`/`hint` say what to do; pages turn that into an empty
state. Time columns come back as timezone-aware pandas Timestamps (UTC).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from dashboards.data import common
from dashboards.filters import DAY, DEFAULT_SPAN_DAYS, OVERALL, Filters
from monitor.config import MonitorConfig
from monitor.context import ModelContext, load_context
from monitor.store.models import IngestedFile, MonitoredModel, PredictionCount
from monitor.store.windows import (
    WindowSpec,
    data_range,
    max_window_ends,
    parse_segment_option,
    segment_label,
)
from monitor.timeutil import ceil_to, now_epoch, to_iso

NO_DATA = "No predictions ingested yet for this model"
NO_DATA_HINT = "Run `monitor ingest` (or `monitor run`) to read the prediction logs."
NO_LABELS = "No labels yet in these windows"
NO_LABELS_HINT = "Recall needs ground truth: labels arrive later; widen the date range or wait."
MISSING = "This part of the engine is not installed yet"
# Without a date range the Subgroups page shows fewer window ends than the others: it has a
# series per segment value (up to hundreds), and its heatmap and ranking use the newest one.
SUBGROUP_SPAN_DAYS = 28


@dataclass
class Result:
    """A frame plus, when it is empty, why (`message`) and what to do (`hint`)."""

    frame: pd.DataFrame
    message: str | None = None
    hint: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.frame.empty


@dataclass
class Facets:
    """What the filter bar offers for a model."""

    classes: list[str]
    minority: list[str]
    segments: list[str]  # segment labels: "region", "a&b" for intersections

    @property
    def default_class(self) -> str | None:
        return (self.minority or self.classes or [None])[0]


def optional(module: str, name: str) -> Callable[..., Any] | None:
    """`module.name` when another part of the project provides it, else None."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def call_service(function: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> Any:
    """Call a service; None when it is absent or still a stub (NotImplementedError)."""
    if function is None:
        return None
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        return None


def cached(function: Callable[..., Any]) -> Callable[..., Any]:
    """Memoise a data-access function per app until the data version changes (arguments must
    be hashable: Filters is). Results are shared: callers must not modify them."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = (function.__qualname__, args, tuple(sorted(kwargs.items())), data_version())
        return common.handle().cache.get_or_compute(key, lambda: function(*args, **kwargs))

    return wrapper


def model_names() -> list[str]:
    return [model.name for model in common.config().models]


def context(conn: Connection, config: MonitorConfig, name: str | None) -> ModelContext | None:
    """The model's context, or None when the model is unknown or has never been ingested.

    (`load_context` would insert the model row; the dashboard only reads.)
    """
    if not name or name not in {m.name for m in config.models}:
        return None
    found = conn.execute(select(MonitoredModel.id).where(MonitoredModel.name == name)).first()
    if found is None:
        return None
    return load_context(conn, config.model(name))


def facets(name: str | None) -> Facets:
    """Classes, minority classes and segment options of model `name` (config, else learned)."""
    config = common.config()
    if not name or name not in {m.name for m in config.models}:
        return Facets([], [], [])
    model = config.model(name)
    with common.read() as (conn, _):
        ctx = context(conn, config, name)
    classes = ctx.classes if ctx else list(model.classes or [])
    minority = ctx.minority_classes if ctx else list(model.minority_classes or [])
    return Facets(classes, minority, [segment_label(s) for s in model.segment_sets])


def window_spec(conn: Connection, ctx: ModelContext, filters: Filters,
                *, span_days: int = DEFAULT_SPAN_DAYS) -> WindowSpec | None:
    """The WindowSpec of the filters: the chosen dates, else the last `span_days` of data."""
    found = data_range(conn, PredictionCount.__table__, ctx.model_id)
    if found is None:
        return None
    step = filters.step_seconds
    last_end = ceil_to(found[1] + ctx.bucket, step)
    start, end = filters.bounds()
    end = min(end, last_end) if end is not None else last_end
    if start is None:
        start = max(end - span_days * DAY, ceil_to(found[0] + 1, step))
    return WindowSpec(filters.window_seconds, step, start, end, max_ends=max_window_ends(ctx.config))


def latest_spec(conn: Connection, ctx: ModelContext, filters: Filters, *, steps: int = 0) -> WindowSpec | None:
    """Only the newest window end of the chosen range (and `steps` ends before it)."""
    spec = window_spec(conn, ctx, filters)
    if spec is None or spec.end is None:
        return spec
    end = spec.end - spec.end % spec.step
    return WindowSpec(spec.window, spec.step, max(end - steps * spec.step, spec.start or end), end,
                      max_ends=spec.max_ends)


def metrics(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
            classes: list[str] | None = None, segment: str | None = OVERALL) -> pd.DataFrame | None:
    """`metrics_frame` with `end` parsed to Timestamps; None when the service is absent."""
    frame = call_service(optional("monitor.metrics.service", "metrics_frame"),
                         conn, ctx, spec, classes=classes, segment=segment)
    if frame is None:
        return None
    frame = frame.copy()
    if not frame.empty:
        frame["end"] = pd.to_datetime(frame["end"], utc=True)
    for column in ("provisional", "recall_estimated", "expected_coverage"):
        if column not in frame.columns:
            frame[column] = False if column == "provisional" else float("nan")
    return frame


def reference(conn: Connection, ctx: ModelContext, segment_sets: list[tuple[str, ...]]) -> pd.DataFrame:
    """Reference metrics per (class, segment, segment_value); empty when not available."""
    frame = call_service(optional("monitor.metrics.service", "reference_metrics"),
                         conn, ctx, segment_sets)
    if not isinstance(frame, pd.DataFrame) or "class" not in frame.columns:
        return pd.DataFrame(columns=["class", "segment", "segment_value", "recall"])
    frame = frame.copy()
    for column in ("segment", "segment_value"):
        if column not in frame.columns:
            frame[column] = OVERALL
    return frame


def with_reference(frame: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Adds `reference_recall` (and reference precision when known) by class and slice."""
    keep = ["class", "segment", "segment_value", "recall"] + (["precision"] if "precision" in ref else [])
    renamed = ref[keep].rename(columns={"recall": "reference_recall", "precision": "reference_precision"})
    merged = frame.merge(renamed, on=["class", "segment", "segment_value"], how="left")
    return merged


def no_data(ctx: ModelContext | None, name: str | None) -> Result:
    if not name:
        return Result(pd.DataFrame(), "No model configured", "Add a [[models]] section to monitor.toml.")
    if ctx is None:
        return Result(pd.DataFrame(), NO_DATA, NO_DATA_HINT)
    return Result(pd.DataFrame(), MISSING, "metrics service (monitor.metrics.service) not available")


# --- Classes page ---------------------------------------------------------------------------

@cached
def class_metrics(filters: Filters) -> Result:
    """Overall per-class metrics over the filters' range (all classes), with reference recall."""
    config = common.config()
    with common.read() as (conn, _):
        ctx = context(conn, config, filters.model)
        spec = window_spec(conn, ctx, filters) if ctx else None
        if ctx is None or spec is None:
            return no_data(None, filters.model)
        frame = metrics(conn, ctx, spec, segment=OVERALL)
        if frame is None:
            return no_data(ctx, filters.model)
        ref = reference(conn, ctx, [()])
    frame = with_reference(frame, ref)
    result = Result(frame, meta={"min_support": _min_support(ctx), "window": filters.window})
    if frame.empty:
        result.message, result.hint = "No windows in this date range", "Widen or clear the date range."
    elif frame["n_labeled"].sum() == 0:
        result.message, result.hint = NO_LABELS, NO_LABELS_HINT
    return result


@cached
def confusion(filters: Filters, end: str | None) -> Result:
    """Confusion counts (true_class, pred_class, n) of the window ending at `end` (ISO), overall
    or for the filters' segment is not applied: the matrix is the model's overall one."""
    function = optional("monitor.metrics.service", "confusion_matrix")
    config = common.config()
    with common.read() as (conn, _):
        ctx = context(conn, config, filters.model)
        spec = latest_spec(conn, ctx, filters) if ctx else None
        if ctx is None or spec is None:
            return no_data(None, filters.model)
        end_epoch = int(pd.Timestamp(end).timestamp()) if end else int(spec.end or 0)
        frame = call_service(function, conn, ctx, end_epoch - spec.window, end_epoch)
    if frame is None:
        return no_data(ctx, filters.model)
    result = Result(frame, meta={"end": to_iso(end_epoch), "classes": ctx.classes})
    if frame.empty or frame["n"].sum() == 0:
        result.message, result.hint = "No labelled predictions in this window", NO_LABELS_HINT
    return result


# --- Subgroups page -------------------------------------------------------------------------

@cached
def subgroup_metrics(filters: Filters) -> Result:
    """Per segment value x class metrics over the range for one segment attribute.

    With segment "*" the first configured attribute is used (meta["segment"] says which).
    Without a date range: the newest SUBGROUP_SPAN_DAYS days of window ends.
    """
    config = common.config()
    with common.read() as (conn, _):
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return no_data(None, filters.model)
        labels = [segment_label(s) for s in ctx.segment_sets]
        if not labels:
            return Result(pd.DataFrame(), "This model has no segments",
                          "List subgroup attributes in `segments` of its [[models]] section.")
        segment = filters.segment if filters.segment in labels else labels[0]
        spec = window_spec(conn, ctx, filters, span_days=SUBGROUP_SPAN_DAYS)
        if spec is None:
            return no_data(None, filters.model)
        frame = metrics(conn, ctx, spec, segment=segment)
        if frame is None:
            return no_data(ctx, filters.model)
        ref = reference(conn, ctx, parse_segment_option(segment, ctx.segment_sets) + [()])
    frame = with_reference(frame, ref)
    overall = ref[(ref["segment"] == OVERALL)]
    meta = {"segment": segment, "min_support": _min_support(ctx), "window": filters.window,
            "overall_reference": dict(zip(overall["class"], overall["recall"], strict=True))}
    result = Result(frame, meta=meta)
    if frame.empty:
        result.message, result.hint = "No windows in this date range", "Widen or clear the date range."
    elif frame["n_labeled"].sum() == 0:
        result.message, result.hint = NO_LABELS, NO_LABELS_HINT
    return result


# --- Overview page --------------------------------------------------------------------------

@dataclass
class ModelHealth:
    """One model's health at a glance (a row of the Overview)."""

    name: str
    minority: pd.DataFrame  # latest window, one row per minority class, with reference_recall
    trend: pd.DataFrame  # minority recall over the last 30 window ends
    label_coverage: float | None
    n_predictions: int
    firing: int
    last_ingest: pd.Timestamp | None
    rejected_rows: int
    failed_files: int
    message: str | None = None
    hint: str | None = None


@cached
def overview(filters: Filters, trend_steps: int = 30) -> list[ModelHealth]:
    """Health of every configured model for the filters' window (the model filter is ignored)."""
    config = common.config()
    out = []
    with common.read() as (conn, _):
        for model in config.models:
            out.append(_model_health(conn, config, model.name, filters, trend_steps))
    return out


def _model_health(conn: Connection, config: MonitorConfig, name: str, filters: Filters,
                  trend_steps: int) -> ModelHealth:
    ledger = _ledger_summary(conn, name)
    health = ModelHealth(name, pd.DataFrame(), pd.DataFrame(), None, 0,
                         _firing_count(conn, name), *ledger)
    ctx = context(conn, config, name)
    spec = latest_spec(conn, ctx, filters, steps=trend_steps) if ctx else None
    if ctx is None or spec is None:
        health.message, health.hint = NO_DATA, NO_DATA_HINT
        return health
    classes = ctx.minority_classes or ctx.classes
    frame = metrics(conn, ctx, spec, classes=classes, segment=OVERALL)
    if frame is None:
        health.message, health.hint = MISSING, "metrics service not available"
        return health
    if frame.empty:
        health.message, health.hint = NO_DATA, NO_DATA_HINT
        return health
    frame = with_reference(frame, reference(conn, ctx, [()]))
    latest = frame[frame["end"] == frame["end"].max()]
    health.minority = latest.reset_index(drop=True)
    health.trend = frame
    first = latest.iloc[0]
    health.label_coverage = None if pd.isna(first["label_coverage"]) else float(first["label_coverage"])
    health.n_predictions = int(first["n_predictions"])
    if latest["n_labeled"].sum() == 0:
        health.message, health.hint = NO_LABELS, NO_LABELS_HINT
    return health


def _ledger_summary(conn: Connection, name: str) -> tuple[pd.Timestamp | None, int, int]:
    """(last ingest time, rejected rows, failed files) from the file ledger."""
    failed = case((IngestedFile.status == "failed", 1), else_=0)
    row = conn.execute(
        select(func.max(IngestedFile.ingested_at),
               func.coalesce(func.sum(IngestedFile.rows_rejected), 0),
               func.coalesce(func.sum(failed), 0))
        .join(MonitoredModel, MonitoredModel.id == IngestedFile.model_id)
        .where(MonitoredModel.name == name)
    ).one()
    last = pd.Timestamp(row[0]) if row[0] is not None else None
    if last is not None and last.tzinfo is None:
        last = last.tz_localize("UTC")
    return last, int(row[1] or 0), int(row[2] or 0)


def _firing_count(conn: Connection, name: str) -> int:
    frame = call_service(optional("monitor.alerts.service", "alerts_frame"), conn, model=name, state="firing")
    return 0 if frame is None else len(frame)


def _min_support(ctx: ModelContext) -> int:
    rules = [rule for rule in ctx.config.alerts if rule.metric == "recall"]
    return rules[0].min_support if rules else 30


# --- Data page ------------------------------------------------------------------------------

@cached
def files(filters: Filters) -> Result:
    """The file ledger of the chosen model (all models when none is chosen)."""
    names = [filters.model] if filters.model else model_names()
    with common.read() as (conn, _):
        frame = call_service(optional("monitor.ingest.report", "files_frame"), conn, names)
    if frame is None:
        return Result(pd.DataFrame(), MISSING, "ingest report (monitor.ingest.report) not available")
    result = Result(_relative_paths(frame, "path"))
    if frame.empty:
        result.message, result.hint = "No files ingested yet", NO_DATA_HINT
    return result


@cached
def rejects(filters: Filters, *, limit: int = 200) -> Result:
    """Rejected rows and failed files with their reasons (newest first, at most `limit`)."""
    names = [filters.model] if filters.model else model_names()
    with common.read() as (conn, _):
        frame = call_service(optional("monitor.ingest.report", "rejects_frame"), conn, names, limit=limit)
    if frame is None:
        return Result(pd.DataFrame(), MISSING, "ingest report (monitor.ingest.report) not available")
    result = Result(_relative_paths(frame, "source"))
    if frame.empty:
        result.message, result.hint = "No rejected rows", "Every row read so far was accepted."
    return result


def _relative_paths(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """File paths relative to the config's folder when they are inside it (shorter, and no
    need to show where the deployment lives)."""
    if frame.empty or column not in frame.columns:
        return frame
    base = str(common.config().base_dir.resolve()).rstrip("/") + "/"
    frame = frame.copy()
    frame[column] = [p[len(base):] if isinstance(p, str) and p.startswith(base) else p
                     for p in frame[column]]
    return frame


@cached
def label_arrival(filters: Filters) -> Result:
    """Label coverage by age of the predictions (how fast the truth arrives)."""
    config = common.config()
    with common.read() as (conn, _):
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return no_data(None, filters.model)
        frame = call_service(optional("monitor.metrics.service", "coverage_by_age"), conn, ctx)
        if frame is None:
            curve = call_service(optional("monitor.metrics.maturity", "coverage_curve"),
                                 conn, ctx, now_epoch())
            if curve is not None:
                bins, shares = curve
                frame = pd.DataFrame({"age_hours": bins, "coverage": shares})
                if float(shares[-1]) == 0.0:  # no labelled history yet
                    frame = frame.iloc[0:0]
    if frame is None:
        return Result(pd.DataFrame(), MISSING, "coverage_by_age (monitor.metrics) not available")
    result = Result(frame)
    if frame.empty:
        result.message, result.hint = "No labels yet", NO_LABELS_HINT
    return result


def data_version() -> str:
    """Changes whenever new data was ingested (pages refresh only then): ledger size and time."""
    with common.read() as (conn, _):
        row = conn.execute(select(func.count(IngestedFile.id), func.max(IngestedFile.ingested_at),
                                  func.sum(IngestedFile.rows_accepted))).one()
    minute = now_epoch() // 60  # alert states also move with the clock: refresh once a minute
    return f"{row[0]}|{row[1]}|{row[2]}|{minute}"
