"""Data access for the Overview, Classes and Subgroups pages (the Data page's is in
`dashboards.data.ledger`), and the model context, window and cache they all share.

Callbacks call these functions with a `Filters` value and get DataFrames (or small
dataclasses of DataFrames) back; they never see a connection or SQL. Everything is read
through the read layer (`monitor.read`: context, default window, metrics, ledger, alerts)
inside one read-only transaction (`common.read`).

A model without data or labels gives an empty result whose `message`/`hint` say what to do;
pages turn that into an empty state. Time columns come back as timezone-aware pandas
Timestamps (UTC).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from dashboards.data import common, triage
from dashboards.filters import DEFAULT_SPAN_DAYS, OVERALL, Filters
from monitor.config import MonitorConfig
from monitor.context import ModelContext
from monitor.read import alerts, incidents, ledger, quality, windows
from monitor.read.context import stored_context
from monitor.store.windows import WindowSpec, parse_segment_option, segment_label
from monitor.timeutil import now_epoch, to_iso

NO_DATA = "No predictions ingested yet for this model"
NO_DATA_HINT = "Run `monitor ingest` (or `monitor run`) to read the prediction logs."
NO_LABELS = "No labels yet in these windows"
NO_LABELS_HINT = "Recall needs ground truth: labels arrive later; widen the date range or wait."
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
        return next(iter(self.minority or self.classes), None)


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
    """The model's context, or None when the model is unknown or has never been ingested."""
    if not name or name not in {m.name for m in config.models}:
        return None
    return stored_context(conn, config.model(name))


def facets(name: str | None) -> Facets:
    """Classes, minority classes and segment options of model `name` (config, else learned)."""
    config = common.config()
    if not name or name not in {m.name for m in config.models}:
        return Facets([], [], [])
    model = config.model(name)
    with common.read() as conn:
        ctx = context(conn, config, name)
    classes = ctx.classes if ctx else list(model.classes or [])
    minority = ctx.minority_classes if ctx else list(model.minority_classes or [])
    return Facets(classes, minority, [segment_label(s) for s in model.segment_sets])


def window_spec(conn: Connection, ctx: ModelContext, filters: Filters,
                *, span_days: int = DEFAULT_SPAN_DAYS) -> WindowSpec | None:
    """The WindowSpec of the filters: the chosen dates, else the last `span_days` of data."""
    start, end = filters.bounds()
    return windows.default_spec(conn, ctx, window=filters.window_seconds, step=filters.step_seconds,
                                span_days=span_days, start=start, end=end)


def latest_spec(conn: Connection, ctx: ModelContext, filters: Filters, *, steps: int = 0) -> WindowSpec | None:
    """Only the newest window end of the chosen range (and `steps` ends before it)."""
    spec = window_spec(conn, ctx, filters)
    return None if spec is None else windows.latest_spec(spec, steps=steps)


def metrics(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
            classes: list[str] | None = None, segment: str | None = OVERALL, estimates: bool = True) -> pd.DataFrame:
    """Metrics records with `end` parsed to Timestamps."""
    frame = quality.metrics(conn, ctx, spec, classes=classes, segment=segment, estimates=estimates)
    if not frame.empty:
        frame = frame.assign(end=pd.to_datetime(frame["end"], utc=True))
    return frame


def with_reference(frame: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Adds `reference_recall` (and reference precision when known) by class and slice."""
    keep = ["class", "segment", "segment_value", "recall"] + (["precision"] if "precision" in ref else [])
    renamed = ref[keep].rename(columns={"recall": "reference_recall", "precision": "reference_precision"})
    merged = frame.merge(renamed, on=["class", "segment", "segment_value"], how="left")
    return merged


def no_data(name: str | None) -> Result:
    """The empty result of a model that is not configured or has nothing ingested."""
    if not name:
        return Result(pd.DataFrame(), "No model configured", "Add a [[models]] section to monitor.toml.")
    return Result(pd.DataFrame(), NO_DATA, NO_DATA_HINT)


# --- Classes page ---------------------------------------------------------------------------

@cached
def class_metrics(filters: Filters) -> Result:
    """Overall per-class metrics over the filters' range (all classes), with reference recall."""
    config = common.config()
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        spec = window_spec(conn, ctx, filters) if ctx else None
        if ctx is None or spec is None:
            return no_data(filters.model)
        frame = metrics(conn, ctx, spec, segment=OVERALL)
        ref = quality.reference_metrics(conn, ctx, [()])
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
    config = common.config()
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        spec = latest_spec(conn, ctx, filters) if ctx else None
        if ctx is None or spec is None:
            return no_data(filters.model)
        end_epoch = int(pd.Timestamp(end).timestamp()) if end else int(spec.end or 0)
        frame = quality.confusion_matrix(conn, ctx, end_epoch - spec.window, end_epoch)
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
    with common.read() as conn:
        ctx = context(conn, config, filters.model)
        if ctx is None:
            return no_data(filters.model)
        labels = [segment_label(s) for s in ctx.segment_sets]
        if not labels:
            return Result(pd.DataFrame(), "This model has no segments",
                          "List subgroup attributes in `segments` of its [[models]] section.")
        segment = filters.segment if filters.segment in labels else labels[0]
        spec = window_spec(conn, ctx, filters, span_days=SUBGROUP_SPAN_DAYS)
        if spec is None:
            return no_data(filters.model)
        frame = metrics(conn, ctx, spec, segment=segment)
        ref = quality.reference_metrics(conn, ctx, parse_segment_option(segment, ctx.segment_sets) + [()])
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
    end: pd.Timestamp | None = None  # the window end every tile shows (never a partial window)
    open_alerts: pd.DataFrame = field(default_factory=pd.DataFrame)  # firing + pending, worst first
    worst: pd.DataFrame = field(default_factory=pd.DataFrame)  # worst slices of every attribute
    incidents: pd.DataFrame = field(default_factory=pd.DataFrame)  # open incidents, with cause and href
    min_drop: float = 0.10  # the recall rule's: a drop the interval must prove

    @property
    def proven_drop(self) -> bool:
        """Some minority tile's interval lies wholly below its reference - min_drop."""
        return triage.proven_drop(self.minority, self.min_drop)


@cached
def overview(filters: Filters, trend_steps: int = 30) -> list[ModelHealth]:
    """Health of every configured model for the filters' window (the model filter is ignored)."""
    config = common.config()
    out = []
    with common.read() as conn:
        for model in config.models:
            out.append(_model_health(conn, config, model.name, filters, trend_steps))
    return out


def _model_health(conn: Connection, config: MonitorConfig, name: str, filters: Filters,
                  trend_steps: int) -> ModelHealth:
    every = alerts.alerts(conn, model=name, state="all")
    found = triage.open_alerts(every, name)
    health = ModelHealth(name, pd.DataFrame(), pd.DataFrame(), None, 0,
                         int((found["state"] == "firing").sum()) if len(found) else 0,
                         *ledger.ledger_summary(conn, name), open_alerts=found,
                         incidents=triage.with_current(
                             triage.incident_links(incidents.incidents(conn, model=name, state="open")), every))
    ctx = context(conn, config, name)
    spec = latest_spec(conn, ctx, filters, steps=trend_steps) if ctx else None
    if ctx is None or spec is None:
        health.message, health.hint = NO_DATA, NO_DATA_HINT
        return health
    health.min_drop = _recall_rule(ctx, "min_drop", 0.10)
    classes = ctx.minority_classes or ctx.classes
    frame = metrics(conn, ctx, spec, classes=classes, segment=OVERALL)
    if frame.empty:
        health.message, health.hint = NO_DATA, NO_DATA_HINT
        return health
    frame = with_reference(frame, quality.reference_metrics(conn, ctx, [()]))
    latest = frame[frame["end"] == frame["end"].max()]
    health.end = latest["end"].iloc[0]
    health.minority = latest.reset_index(drop=True)
    health.trend = frame
    first = latest.iloc[0]
    health.label_coverage = None if pd.isna(first["label_coverage"]) else float(first["label_coverage"])
    health.n_predictions = int(first["n_predictions"])
    if latest["n_labeled"].sum() == 0:
        health.message, health.hint = NO_LABELS, NO_LABELS_HINT
    elif ctx.segment_sets:
        # realized recall ranks the slices: the label-free estimate of every slice (most of
        # this read's time with many segment values, bench/segments.py) is not shown here
        slices = metrics(conn, ctx, windows.latest_spec(spec), segment=None, estimates=False)
        slices = with_reference(slices, quality.reference_metrics(conn, ctx))
        health.worst = triage.worst_slices(slices, name, min_support=_min_support(ctx), min_drop=health.min_drop,
                                           window=filters.window)
    return health


def _recall_rule(ctx: ModelContext, key: str, default: float) -> float:
    rules = [rule for rule in ctx.config.alerts if rule.metric == "recall"]
    return float(getattr(rules[0], key)) if rules else default


def _min_support(ctx: ModelContext) -> int:
    rules = [rule for rule in ctx.config.alerts if rule.metric == "recall"]
    return rules[0].min_support if rules else 30


def data_version() -> str:
    """Changes whenever new data was ingested (pages refresh only then): ledger size and time."""
    with common.read() as conn:
        version = ledger.ledger_version(conn)
    minute = now_epoch() // 60  # alert states also move with the clock: refresh once a minute
    return f"{version}|{minute}"
