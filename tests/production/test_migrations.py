"""The Alembic chain on both backends: down to nothing and up again, and models == schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from alembic import command
from monitor.schema import metadata
from monitor.store.migrate import alembic_config, current_revision, upgrade
from monitor.store.partitions import compared_with_models


def _not_a_partition(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """As env.py: the weekly partitions of the raw tables and their foreign keys dropped on
    PostgreSQL are not compared."""
    return compared_with_models(obj, name, type_)


def _run(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_the_chain_downgrades_to_nothing_and_upgrades_again(engine: Engine) -> None:
    head = current_revision(engine)
    assert head is not None
    _run(engine, "downgrade", "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": _not_a_partition}), metadata)
    assert {"predictions", "labels", "confusion_counts", "prediction_counts"} <= tables
    assert differences == []


def test_0016_packs_stored_score_texts_exactly_and_back(engine: Engine) -> None:
    """Rows written as text by the old code are packed in place (PostgreSQL in SQL with
    float8send, SQLite in Python), read back bit for bit, and the downgrade restores the
    exact text the old code wrote."""
    import json

    import numpy as np
    from sqlalchemy import text

    from monitor.estimation.recalibrate import unpack_scores

    _run(engine, "downgrade", "0015")
    rng = np.random.default_rng(7)
    scores = np.vstack([rng.random((200, 3)), [[0.0, 1.0, 1e-05], [1 / 3, 2e-308, 0.1 + 0.2]]])
    texts = [",".join(json.dumps(v) for v in row) for row in scores.tolist()]
    with engine.begin() as conn:
        model = conn.execute(text("INSERT INTO monitored_models (name, classes, minority_classes, created_at) "
                                  "VALUES ('m16', '[]', '[]', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO estimation_scores (model_id, prediction_id, ts, scores) VALUES (:m, :p, :t, :s)"),
                     [{"m": model, "p": f"p{i:04d}", "t": i, "s": s} for i, s in enumerate(texts)])
    _run(engine, "upgrade", "0016")
    with engine.connect() as conn:
        packed = conn.execute(text("SELECT scores FROM estimation_scores ORDER BY prediction_id")).scalars().all()
    assert all(isinstance(p, bytes) and len(p) == 24 for p in packed)
    assert np.array_equal(unpack_scores(list(packed), 3), scores)  # exact, not approximately
    _run(engine, "downgrade", "0015")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT scores FROM estimation_scores ORDER BY prediction_id")).scalars().all()
    assert back == texts
    upgrade(engine)


def test_0017_moves_the_kept_scores_into_their_predictions_and_back(engine: Engine) -> None:
    """The rows of `estimation_scores` land in their predictions' `scores` (the others stay
    NULL) and the table goes; the downgrade brings back the table with the same rows."""
    import numpy as np
    from sqlalchemy import text

    from monitor.estimation.recalibrate import pack_scores

    _run(engine, "downgrade", "0016")
    packed = pack_scores(np.random.default_rng(17).random((6, 3)))
    with engine.begin() as conn:
        model = conn.execute(text("INSERT INTO monitored_models (name, classes, minority_classes, created_at) "
                                  "VALUES ('m17', '[]', '[]', CURRENT_TIMESTAMP) RETURNING id")).scalar_one()
        conn.execute(text("INSERT INTO predictions (model_id, prediction_id, ts, bucket_start, slice_id, predicted, "
                          "content_hash) VALUES (:m, :p, :t, :t, 1, 'a', 0)"),
                     [{"m": model, "p": f"p{i}", "t": 1_704_067_200 + i * 86_400 * 3} for i in range(10)])
        conn.execute(text("INSERT INTO estimation_scores (model_id, prediction_id, ts, scores) VALUES (:m, :p, :t, :s)"),
                     [{"m": model, "p": f"p{i}", "t": 1_704_067_200 + i * 86_400 * 3, "s": s}
                      for i, s in enumerate(packed)])
    _run(engine, "upgrade", "0017")
    with engine.connect() as conn:
        moved = dict(conn.execute(text("SELECT prediction_id, scores FROM predictions")).all())
        assert "estimation_scores" not in inspect(conn).get_table_names()
    assert {p: (bytes(s) if s is not None else None) for p, s in moved.items()} == {
        f"p{i}": packed[i] if i < 6 else None for i in range(10)}
    _run(engine, "downgrade", "0016")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT model_id, prediction_id, ts, scores FROM estimation_scores "
                                 "ORDER BY prediction_id")).all()
        assert "scores" not in {c["name"] for c in inspect(conn).get_columns("predictions")}
    assert [(m, p, t, bytes(s)) for m, p, t, s in back] == [
        (model, f"p{i}", 1_704_067_200 + i * 86_400 * 3, packed[i]) for i in range(6)]
    upgrade(engine)
