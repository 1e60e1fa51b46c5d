"""A model's resolved facts for one run: database id, classes, segments, score columns.

`ModelContext` is what every engine function receives next to a connection. Classes come
from the config, else from the reference labels (stored in `monitored_models`), else from
the data seen so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from monitor.config import ModelConfig
from monitor.store.bulk import inserted_id
from monitor.store.models import MonitoredModel


@dataclass
class ModelContext:
    config: ModelConfig
    model_id: int
    classes: list[str]
    minority_classes: list[str]
    segments: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def bucket(self) -> int:
        return self.config.bucket_seconds

    @property
    def segment_sets(self) -> list[tuple[str, ...]]:
        return self.config.segment_sets

    @property
    def score_columns(self) -> list[str]:
        """Canonical score column names inside the engine: score_<class>."""
        return [f"score_{c}" for c in self.classes]


def ensure_model(conn: Connection, model: ModelConfig) -> int:
    """The id of `model` in monitored_models, inserting it on first sight."""
    found = conn.execute(
        select(MonitoredModel.id).where(MonitoredModel.name == model.name)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    result = conn.execute(
        insert(MonitoredModel).values(
            name=model.name,
            classes=model.classes,
            minority_classes=model.minority_classes,
            segments=model.segments,
        )
    )
    return inserted_id(result)


def load_context(conn: Connection, model: ModelConfig) -> ModelContext:
    """Context for `model` from its config and what the database learned (reference): one
    query for a model already stored (every write of the API and the stream asks)."""
    query = select(MonitoredModel.id, MonitoredModel.classes, MonitoredModel.minority_classes).where(
        MonitoredModel.name == model.name
    )
    row = conn.execute(query).one_or_none()
    if row is None:  # first sight: stored, then read back as stored
        ensure_model(conn, model)
        row = conn.execute(query).one()
    return context_from_row(model, row.id, row.classes, row.minority_classes)


def context_from_row(model: ModelConfig, model_id: int, classes: list[str] | None,
                     minority: list[str] | None) -> ModelContext:
    """The context of `model` from its stored `monitored_models` row's id and learned classes
    (for callers that read that row within a larger query)."""
    return ModelContext(
        config=model,
        model_id=int(model_id),
        classes=list(model.classes or classes or []),
        minority_classes=list(model.minority_classes or minority or []),
        segments=list(model.segments),
        features=list(model.features),
    )


def store_learned_classes(
    conn: Connection, model_id: int, classes: list[str], minority: list[str]
) -> None:
    conn.execute(
        update(MonitoredModel)
        .where(MonitoredModel.id == model_id)
        .values(classes=classes, minority_classes=minority)
    )
