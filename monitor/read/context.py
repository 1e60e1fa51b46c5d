"""A model's context for reading, resolved without writing.

`monitor.context.load_context` inserts a missing `monitored_models` row: right for the writers
(ingest, tick), wrong inside a read. Here a model that was configured but never ingested gets
a context whose `model_id` is `UNSTORED`, which matches no row of any table: every service
then answers its empty frame with the usual columns, as it would for a stored model without
data, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from monitor.config import ModelConfig
from monitor.context import ModelContext
from monitor.store.queries import stored_model

UNSTORED = -1  # no row has this id (ids start at 1)


def model_context(conn: Connection, model: ModelConfig) -> ModelContext:
    """The context of `model`: classes from the config, else those learned from the
    reference (stored with the model), else none yet; `UNSTORED` id when never ingested."""
    found = stored_model(conn, model.name)
    model_id, classes, minority = found if found is not None else (UNSTORED, [], [])
    return ModelContext(
        config=model,
        model_id=model_id,
        classes=list(model.classes or classes or []),
        minority_classes=list(model.minority_classes or minority or []),
        segments=list(model.segments),
        features=list(model.features),
    )


def stored_context(conn: Connection, model: ModelConfig) -> ModelContext | None:
    """The context of `model`, or None when it was never ingested (the dashboard shows its
    "nothing ingested yet" state then)."""
    ctx = model_context(conn, model)
    return ctx if is_stored(ctx) else None


def is_stored(ctx: ModelContext) -> bool:
    """Whether the model has a row (it was ingested at least once)."""
    return ctx.model_id != UNSTORED


def option_names(values: str | Sequence[str] | None, known: Sequence[str]) -> list[str] | None:
    """The names a `--class`/`?class=` option asks for, comma-separated (several values, as a
    repeated query parameter, add up). Commas that are part of a known name do not split it,
    so that a class from the data such as "late, severe" can be asked for: at each place the
    longest known name wins. None when none."""
    names: list[str] = []
    for value in [values] if isinstance(values, str) else list(values or []):
        names += _split_known(value, set(known))
    return list(dict.fromkeys(name for name in names if name)) or None


def _split_known(value: str, known: set[str]) -> list[str]:
    parts = value.split(",")
    widest = max((name.count(",") for name in known), default=0)  # bounds the work per part
    names, start = [], 0
    while start < len(parts):
        end = next((end for end in range(min(len(parts), start + widest + 1), start, -1)
                    if ",".join(parts[start:end]).strip() in known), start + 1)
        names.append(",".join(parts[start:end]).strip())
        start = end
    return names
