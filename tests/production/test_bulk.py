"""insert_frame and add_counts on both backends (COPY on PostgreSQL, executemany on SQLite)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from monitor.store.bulk import add_counts, insert_frame
from monitor.store.models import ConfusionCount, Label, MonitoredModel, Prediction, RejectedRow

HOSTILE = ["<script>alert(1)</script>", "'; DROP TABLE predictions; --", "tab\there", "new\nline",
           "back\\slash", "quote\"d", "\\N", "ünïcödé"]


def _model(engine: Engine, name: str = "m") -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(MonitoredModel).values(name=name)).inserted_primary_key[0])


def _predictions(model_id: int, n: int) -> pd.DataFrame:
    ids = [f"p{i}" for i in range(n)]
    return pd.DataFrame({
        "model_id": np.full(n, model_id, dtype=np.int64),
        "prediction_id": ids,
        "ts": np.arange(n, dtype=np.int64) + 1_700_000_000,
        "bucket_start": np.full(n, 1_700_000_000, dtype=np.int64),
        "slice_id": np.ones(n, dtype=np.int64),
        "predicted": [HOSTILE[i % len(HOSTILE)] for i in range(n)],
        "model_version": [None if i % 3 == 0 else f"v{i % 2}" for i in range(n)],
        "content_hash": np.arange(n, dtype=np.int64) * 7919,
        "file_id": pd.array([None if i % 5 == 0 else 1 for i in range(n)], dtype="Int64"),
    })


def test_it_inserts_every_row_with_exact_values(engine: Engine) -> None:
    model_id = _model(engine)
    frame = _predictions(model_id, 1234)
    with engine.begin() as conn:
        assert insert_frame(conn, Prediction.__table__, frame) == 1234
    with engine.connect() as conn:
        stored = pd.read_sql(select(Prediction).order_by(Prediction.ts), conn)
    assert len(stored) == 1234
    assert stored["predicted"].tolist() == frame["predicted"].tolist()
    assert stored["model_version"].where(stored["model_version"].notna(), None).tolist() == \
        frame["model_version"].tolist()
    assert stored["content_hash"].tolist() == frame["content_hash"].tolist()
    assert stored["file_id"].isna().sum() == frame["file_id"].isna().sum()


def test_rows_in_random_key_order_are_stored_row_for_row(engine: Engine) -> None:
    """Rows in a random key order: each stored row carries its own values, missing ones
    included."""
    model_id = _model(engine)
    frame = _predictions(model_id, 2000).sample(frac=1.0, random_state=7).reset_index(drop=True)
    with engine.begin() as conn:
        assert insert_frame(conn, Prediction.__table__, frame) == 2000
    with engine.connect() as conn:
        stored = pd.read_sql(select(Prediction), conn).set_index("prediction_id")
    expected = frame.set_index("prediction_id")
    stored = stored.loc[expected.index]
    for column in ["ts", "predicted", "content_hash"]:
        assert stored[column].tolist() == expected[column].tolist(), column
    assert stored["model_version"].isna().tolist() == expected["model_version"].isna().tolist()
    assert stored["file_id"].isna().tolist() == expected["file_id"].isna().tolist()


def test_it_rolls_back_with_the_callers_transaction(engine: Engine) -> None:
    model_id = _model(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        insert_frame(conn, Prediction.__table__, _predictions(model_id, 100))
        raise RuntimeError("caller fails after the insert")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 0


def test_a_duplicate_key_raises_integrity_error(engine: Engine) -> None:
    model_id = _model(engine)
    frame = _predictions(model_id, 10)
    with engine.begin() as conn:
        insert_frame(conn, Prediction.__table__, frame)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_frame(conn, Prediction.__table__, frame.iloc[:1])


def test_it_applies_python_side_defaults(engine: Engine) -> None:
    model_id = _model(engine)
    frame = pd.DataFrame({"model_id": [model_id] * 3, "kind": ["predictions"] * 3,
                          "source": ["api"] * 3, "row_number": [1, 2, 3],
                          "field": ["timestamp", None, "x"], "reason": HOSTILE[:3],
                          "raw": ['{"a": 1}', None, "x"]})
    with engine.begin() as conn:
        insert_frame(conn, RejectedRow.__table__, frame)
    with engine.connect() as conn:
        rows = conn.execute(select(RejectedRow).order_by(RejectedRow.row_number)).all()
    assert [r.reason for r in rows] == HOSTILE[:3]
    assert all(r.created_at is not None and r.created_at.tzinfo is not None for r in rows)
    assert len({r.id for r in rows}) == 3


def test_add_counts_adds_to_existing_keys(engine: Engine) -> None:
    model_id = _model(engine)
    keys = {"model_id": model_id, "bucket_start": 0, "slice_id": 1, "pred_class": "a"}
    first = pd.DataFrame([{**keys, "true_class": "a", "n": 2}, {**keys, "true_class": "b", "n": 1},
                          {**keys, "true_class": "a", "n": 3}])
    second = pd.DataFrame([{**keys, "true_class": "a", "n": -1}])
    columns = ["model_id", "bucket_start", "slice_id", "true_class", "pred_class"]
    with engine.begin() as conn:
        add_counts(conn, ConfusionCount.__table__, first, key_columns=columns)
    with engine.begin() as conn:
        add_counts(conn, ConfusionCount.__table__, second, key_columns=columns)
    with engine.connect() as conn:
        counts = dict(conn.execute(select(ConfusionCount.true_class, ConfusionCount.n)).all())
    assert counts == {"a": 4, "b": 1}


def test_copy_stores_what_a_plain_insert_stores(engine: Engine) -> None:
    """PostgreSQL's COPY (bytea written as bytes, without SQLAlchemy's per-value wrapping)
    stores, for every kind of column of the raw tables (integers, text with the characters
    COPY escapes, booleans, bytea, and missing values of each), exactly what a plain INSERT
    of the same rows stores."""
    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    first, second = _model(engine), _model(engine, "other")
    hostile = [*HOSTILE, "", "\r\n", "a\\\\tb", "\\.", "x" * 200, "日本語\ttab"]
    n = 600
    frame = _predictions(first, n).assign(predicted=[hostile[i % len(hostile)] for i in range(n)],
                                          model_version=[None if i % 4 == 0 else hostile[(i * 7) % len(hostile)]
                                                         for i in range(n)])
    rng = np.random.default_rng(5)
    frame["scores"] = [None if i % 6 == 0 else (b"" if i % 6 == 1 else rng.bytes(24) + b"\\\x00\n\t")
                       for i in range(n)]
    labels = pd.DataFrame({"model_id": first, "prediction_id": frame["prediction_id"],
                           "label": [hostile[(i * 3) % len(hostile)] for i in range(n)],
                           "label_ts": frame["ts"] + 60,
                           "applied_label": [None if i % 2 else hostile[i % len(hostile)] for i in range(n)],
                           "needs_apply": [i % 3 == 0 for i in range(n)],
                           "file_id": pd.array([None if i % 5 == 0 else 2 for i in range(n)], dtype="Int64")})
    tables = ((Prediction.__table__, frame), (Label.__table__, labels))
    with engine.begin() as conn:
        for table, rows in tables:
            insert_frame(conn, table, rows)
            plain = rows.assign(model_id=second).astype(object)
            conn.execute(table.insert(), [{k: (None if v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v)
                                           for k, v in row.items()} for row in plain.to_dict("records")])
    with engine.connect() as conn:
        for table, _rows in tables:
            got = {m: pd.read_sql(select(table).where(table.c.model_id == m).order_by(table.c.prediction_id), conn)
                   .drop(columns=["model_id"]) for m in (first, second)}
            assert len(got[first]) == n
            pd.testing.assert_frame_equal(got[first], got[second])
    assert set(got[first]["label"]) == set(labels["label"])  # (the last table: hostile text came back whole)
