"""The quick check of a small JSON batch: plain Python for the usual body, pandas for the rest.

A POST body of a few dozen records costs milliseconds in the vectorised
validator (`monitor.ingest.validate`), almost all of it pandas' fixed cost per operation. Most
bodies are plainly valid: ids and classes as text or integers, times as epoch numbers or ISO
8601 texts inside the limits, scores as numbers in [0, 1]. `plain_records` checks exactly
that, record by record, and gives the records to queue; for anything else (one record that
might be rejected, a type it does not know) it gives None and the caller runs the full
validator on the whole batch, so every reject and its reason still come from one validator.

The quick check only says yes when the full validator would accept every record
(tests/throughput/test_quick_check.py checks that on generated hostile batches), and the inbox's drain
validates every queued record again with the full validator before anything is counted.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from monitor.context import ModelContext
from monitor.ingest.records import check_record
from monitor.ingest.validate import MILLISECONDS_FROM
from monitor.timeutil import now_epoch

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")
_DECIMAL = re.compile(r"[+-]?\d{1,12}(\.\d{1,9})?")
_NUMBER = (int, float)


def _epoch(value: Any, auto: bool) -> float | None:
    """Epoch seconds of a plainly valid time (a number, a decimal text, an ISO 8601 text), else
    None (the full validator decides)."""
    if type(value) is str:
        value = value.strip()
        if _DECIMAL.fullmatch(value):
            value = float(value)
        elif _ISO.fullmatch(value):
            try:
                stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=timezone.utc)
            return stamp.timestamp()
        else:
            return None
    if type(value) not in _NUMBER or not math.isfinite(value):
        return None
    return value / 1000.0 if auto and abs(value) >= MILLISECONDS_FROM else float(value)


def _text(value: Any, limit: int) -> str | None:
    """The stripped text of a plainly valid required text field, else None."""
    if type(value) is not str:
        return None
    value = value.strip()
    return value if value and len(value) <= limit else None


class _Plain:
    """What `plain_records` checks, resolved once per batch."""

    def __init__(self, ctx: ModelContext, kind: str) -> None:
        from monitor.ingest.ledger import input_columns

        limits = ctx.config.limits
        self.ctx = ctx
        strings, self.keep = input_columns(ctx, kind)
        self.strings = set(strings)
        self.classes = set(ctx.classes)
        self.auto = limits.epoch_units == "auto"
        self.earliest, self.latest = limits.earliest_epoch, now_epoch() + limits.max_future_seconds
        self.id_limit, self.value_limit = limits.max_id_length, limits.max_value_length

    def time(self, value: Any) -> float | None:
        epoch = _epoch(value, self.auto)
        return epoch if epoch is not None and self.earliest <= epoch <= self.latest else None

    def cls(self, value: Any) -> bool:
        text = _text(value, self.value_limit)
        return text is not None and (not self.classes or text in self.classes)

    def prediction(self, record: dict[str, Any]) -> bool:
        source, ctx = self.ctx.config.predictions, self.ctx
        if _text(record.get(source.id), self.id_limit) is None or not self.cls(record.get(source.prediction)):
            return False
        if self.time(record.get(source.timestamp)) is None:
            return False
        version = record.get(source.model_version)
        if version is not None and (type(version) is not str or len(version.strip()) > self.value_limit):
            return False
        for cls in ctx.classes:
            score = record.get(f"{source.score_prefix}{cls}")
            if score is not None and (type(score) not in _NUMBER or not (0.0 <= score <= 1.0)):
                return False  # NaN, a bool or a text: the full validator decides
        for segment in ctx.segments:
            value = record.get(segment)
            if value is not None and (type(value) is not str or len(value.strip()) > self.value_limit):
                return False
        return True

    def label(self, record: dict[str, Any], received: int) -> dict[str, Any] | None:
        """The canonical label row the full validator would give, or None."""
        source = self.ctx.config.labels
        ident = _text(record.get(source.id), self.id_limit)
        label = _text(record.get(source.label), self.value_limit)
        if ident is None or label is None or (self.classes and label not in self.classes):
            return None
        raw = record.get(source.timestamp)
        if raw is None or (type(raw) is str and not raw.strip()):
            return {source.id: ident, source.label: label, source.timestamp: received}
        epoch = self.time(raw)
        if epoch is None:
            return None
        return {source.id: ident, source.label: label, source.timestamp: int(epoch)}


def plain_records(records: list[tuple[int, Any]], ctx: ModelContext, kind: str, *, received: int,
                  max_fields: int) -> list[tuple[int, dict[str, Any]]] | None:
    """(row, record to queue) for every record of a plainly valid batch, or None when any
    record needs the full validator. `received` (epoch seconds) is a label's default time.
    Predictions are queued with their kept fields as sent; labels as the canonical
    (id, label, time) the full validator gives, so both paths queue the same rows."""
    plain = _Plain(ctx, kind)
    out: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        kept = check_record(number, record, plain.strings, plain.keep, max_fields)
        if isinstance(kept, tuple):
            return None
        kept = {key: value for key, value in kept.items()
                if value is not None and not (type(value) is float and math.isnan(value))}
        if kind == "predictions":
            if not plain.prediction(kept):
                return None
            out.append((number, kept))
        else:
            row = plain.label(kept, received)
            if row is None:
                return None
            out.append((number, row))
    return out
