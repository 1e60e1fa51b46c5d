"""The extension points: drift methods, notification channels, input formats and metrics.

Each is a `Registry` of named entries, and every entry is registered below in one line: its
name, where its code lives (`"module:attribute"`, imported on first use) and the facts the
rest of the engine needs before that code is loaded (a channel's required keys, a drift
method's default threshold, a rate's counts). `monitor.config` validates names against these
registries, so a new entry is accepted by the config, listed in the JSON schema and in every
"unknown name" message at once. Recipes: docs/internals.md, "Extension points".

Why targets are strings: this module must import nothing of ours, because the config reads
it and nearly every implementation reads the config; a direct import here would tie every
package into one import cycle. A target that cannot be loaded raises (ImportError,
AttributeError) on first use, never a silent fallback, and tests/registry loads every entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import UnknownName


@dataclass(frozen=True)
class Rate:
    """A metric computed from one-vs-rest confusion counts: value = successes / trials, with
    each a weighted sum of the counts tp, fp, fn, tn (f1: 2tp / (2tp + fp + fn)).
    `interval`: the value is a binomial proportion, so it gets a Wilson interval
    (`<name>_low`, `<name>_high`) and alert rules may test drops of it."""

    successes: Mapping[str, int]
    trials: Mapping[str, int]
    interval: bool = True


@dataclass(frozen=True)
class Entry:
    name: str
    target: str | None  # "package.module:attribute", None when there is nothing to load
    options: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        if self.target is None:
            raise LookupError(f"{self.name!r} has no implementation to load")
        return _load(self.target)


def _load(target: str) -> Any:  # not cached: import_module is, and tests may patch the attribute
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry:
    """Named entries of one kind, in registration order (which is the order of output)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str | None = None, **options: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, options)

    def entries(self, **where: Any) -> list[Entry]:
        """Entries whose options equal `where` (`kinds=` matches when it contains the value)."""
        return [entry for entry in self._entries.values() if all(
            value in entry.options.get(key, ()) if key == "kinds" else entry.options.get(key) == value
            for key, value in where.items())]

    def names(self, **where: Any) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries(**where))

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.kind, name, self._entries) from None

    def load(self, name: str) -> Any:
        return self.entry(name).load()

    def check(self, name: str) -> str:
        """`name` when registered, else UnknownName (a ValueError: pydantic validators use it)."""
        return self.entry(name).name


# --- drift methods: `fn(histograms: monitor.drift.methods.Histograms) -> values per row` ---
# kinds: the feature kinds it applies to; threshold: default of its `[models.drift]` key;
# test: "distance" drifts above the threshold, "pvalue" below it; label and axis: for people
# (the dashboard's method menu and the axis title of its charts).
DRIFT_METHODS = Registry("drift method")
DRIFT_METHODS.register("psi", "monitor.drift.methods:psi_of", kinds=("numeric", "categorical"),
                       threshold=0.2, test="distance", label="Population stability index",
                       axis="Population stability index (unitless)")
DRIFT_METHODS.register("js", "monitor.drift.methods:js_of", kinds=("numeric", "categorical"),
                       threshold=0.1, test="distance", label="Jensen-Shannon distance (0-1)",
                       axis="Jensen-Shannon distance (0 = same, 1 = disjoint)")
DRIFT_METHODS.register("ks", "monitor.drift.methods:ks_of", kinds=("numeric",),
                       threshold=0.1, test="distance", label="Kolmogorov-Smirnov statistic (0-1)",
                       axis="Kolmogorov-Smirnov statistic (0-1)")
DRIFT_METHODS.register("wasserstein", "monitor.drift.methods:wasserstein_of", kinds=("numeric",),
                       threshold=0.1, test="distance", label="Wasserstein distance (reference std)",
                       axis="Wasserstein distance (reference standard deviations)")
DRIFT_METHODS.register("chi2", "monitor.drift.methods:chi2_of", kinds=("categorical",),
                       threshold=0.01, test="pvalue", label="Chi-squared p-value",
                       axis="Chi-squared p-value (low = drifted)")

# --- notification channels: `send(channel, event, config)`, raising TransportError ---
# requires: `[[channels]]` keys that must be set; threads: at most this many concurrent sends
CHANNELS = Registry("channel type")
CHANNELS.register("webhook", "monitor.alerts.channels.webhook:send", requires=("url",))
CHANNELS.register("slack", "monitor.alerts.channels.slack:send", requires=("url",))
CHANNELS.register("email", "monitor.alerts.channels.email:send",
                  requires=("smtp_host", "email_from", "email_to"))
CHANNELS.register("log", "monitor.alerts.channels.log:send", requires=(), threads=1)  # lines in order

# --- input formats: `read(path, string_columns, keep, limits, complete_only=, state=,
#     chunk_rows=) -> Iterator[Chunk]` (monitor.ingest.readers.read_chunks calls it) ---
# suffixes: lower-case file name endings that select the format
INPUT_FORMATS = Registry("input format")
INPUT_FORMATS.register("csv", "monitor.ingest.readers:read_csv", suffixes=(".csv", ".csv.gz"))
INPUT_FORMATS.register("jsonl", "monitor.ingest.readers:read_jsonl",
                       suffixes=(".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"))
INPUT_FORMATS.register("parquet", "monitor.ingest.readers:read_parquet", suffixes=(".parquet",))

# --- metrics: what alert rules observe (`metric = ...`) and figures plot ---
# target: the alert source, `observe(conn, ctx, rule, spec, as_of) -> observations`
# (None: computed in the metrics records but not alertable); rate: from confusion counts,
# computed into every metrics record (`monitor.rates.one_vs_rest`); label: for people.
METRICS = Registry("metric")
METRICS.register("precision", "monitor.alerts.sources:rate_observations", label="Precision",
                 rate=Rate({"tp": 1}, {"tp": 1, "fp": 1}))
METRICS.register("recall", "monitor.alerts.sources:rate_observations", label="Recall",
                 rate=Rate({"tp": 1}, {"tp": 1, "fn": 1}))
METRICS.register("f1", None, label="F1", rate=Rate({"tp": 2}, {"tp": 2, "fp": 1, "fn": 1}, interval=False))
METRICS.register("recall_estimated", "monitor.alerts.sources:estimated_observations",
                 label="Estimated recall")
METRICS.register("drift", "monitor.alerts.sources:drift_observations", label="Drift")
METRICS.register("fairness", "monitor.alerts.sources:fairness_observations", label="Fairness gap")


def rate_metrics() -> list[Entry]:
    """The metrics computed from confusion counts, in registration order."""
    return [entry for entry in METRICS.entries() if entry.options.get("rate") is not None]


def tested_metrics() -> tuple[str, ...]:
    """Alertable rates that are proportions: alert rules test their drops (monitor.alerts.rules)."""
    return tuple(entry.name for entry in rate_metrics()
                 if entry.target is not None and entry.options["rate"].interval)


def alert_metrics() -> tuple[str, ...]:
    """The names an alert rule's `metric` may take: metrics with an alert source."""
    return tuple(entry.name for entry in METRICS.entries() if entry.target is not None)
