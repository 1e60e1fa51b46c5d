"""`select_in`, the lookup of stored ids on the ingest hot path: on PostgreSQL text keys go as
one array literal the server parses (`array_param`); hostile ids must still match exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import Engine, insert, text

from monitor.store.bulk import array_literal, array_param, select_in
from monitor.store.models import Prediction

HOSTILE = ['a"b', "c\\d", "", "NULL", "null", "{x,y}", " sp ", "é", "a,b", 'a","b', '\\"', '"', "\t", "x\ny",
           "💥", "}", "{", "'", "ARRAY[1]", "p" * 200]


def test_hostile_ids_are_found_exactly_and_only_them(engine: Engine) -> None:
    with engine.begin() as conn:
        model = conn.execute(text("INSERT INTO monitored_models (name, created_at) VALUES ('m', CURRENT_TIMESTAMP) "
                                  "RETURNING id")).scalar_one()
        stored = [*HOSTILE, *(f"id-{i}" for i in range(300))]
        conn.execute(insert(Prediction), [
            {"model_id": model, "prediction_id": pid, "ts": i, "bucket_start": 0, "slice_id": 0, "predicted": "a",
             "content_hash": i} for i, pid in enumerate(stored)])
        asked = [*HOSTILE, "id-7", "id-299", "missing", 'missing"', "a"]
        found = select_in(conn, Prediction.__table__, key_column="prediction_id", keys=asked,
                          columns=["ts"], equal={"model_id": model})
    assert sorted(found) == sorted((pid, stored.index(pid)) for pid in [*HOSTILE, "id-7", "id-299"])


def test_a_small_lookup_runs_serial_and_generic_and_leaves_the_transactions_settings(engine: Engine) -> None:
    """PostgreSQL: up to SERIAL_LOOKUP ids are looked up without parallel workers, and up to
    GENERIC_PLAN_LOOKUP with a generic plan (a custom plan seq-scans every weekly partition);
    the transaction's own settings are restored after, and a larger lookup keeps them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("parallel query is PostgreSQL's")
    from monitor.store import bulk

    table = Prediction.__table__
    seen: list[tuple[str, str]] = []
    with engine.begin() as conn:
        model = conn.execute(text("INSERT INTO monitored_models (name, created_at) VALUES ('m', CURRENT_TIMESTAMP) "
                                  "RETURNING id")).scalar_one()
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 3"))
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        driver = conn.connection.driver_connection
        original = driver.cursor  # type: ignore[union-attr]

        class Watching:  # the setting in force when the lookup itself runs
            def __init__(self) -> None:
                self.inner = original()

            def execute(self, query, params=None, **options):  # type: ignore[no-untyped-def]
                if "= ANY(" in query:
                    seen.append(driver.execute(  # type: ignore[union-attr]
                        "SELECT current_setting('max_parallel_workers_per_gather'), "
                        "current_setting('plan_cache_mode')").fetchone())
                return self.inner.execute(query, params, **options)

            def __getattr__(self, name):  # type: ignore[no-untyped-def]
                return getattr(self.inner, name)

        driver.cursor = Watching  # type: ignore[union-attr]
        try:
            assert select_in(conn, table, key_column="prediction_id", keys=["a", "b"], columns=["ts"],
                             equal={"model_id": model}) == []
            after_small = tuple(conn.execute(text("SELECT current_setting('max_parallel_workers_per_gather'), "
                                                  "current_setting('plan_cache_mode')")).one())
            for size in (bulk.GENERIC_PLAN_LOOKUP + 1, bulk.SERIAL_LOOKUP + 1):
                keys = [f"id-{i}" for i in range(size)]
                assert select_in(conn, table, key_column="prediction_id", keys=keys, columns=["ts"],
                                 equal={"model_id": model}) == []
        finally:
            driver.cursor = original  # type: ignore[union-attr]
    assert seen == [("0", "force_generic_plan"), ("0", "force_custom_plan"), ("3", "force_custom_plan")]
    assert after_small == ("3", "force_custom_plan")


def test_the_array_literal_is_read_back_as_the_keys(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("array literals are PostgreSQL's (SQLite looks ids up with IN lists)")
    with engine.connect() as conn:
        for keys in (HOSTILE, ["plain", "ids"], [], ["NULL"]):
            value, cast = array_param(keys)
            assert cast == "::text[]"
            driver = conn.connection.driver_connection
            assert driver.execute(f"SELECT %s{cast}", [value]).fetchone()[0] == keys  # type: ignore[union-attr]
        assert array_param([1, 2]) == ([1, 2], "")
        # the count upserts' arrays: numbers exact (floats by their shortest repr), NULLs, booleans
        floats = [0.1, 1 / 3, 1e-300, -2.5, 2.0**60, math.inf, -math.inf]
        cases = [([1, -5, 2**62, 0], "int8[]"), (floats, "float8[]"), ([1.5, None, 2.0], "float8[]"),
                 ([True, False, None], "bool[]"), ([1, None, 3], "int8[]"), ([*HOSTILE, None], "text[]"),
                 ([np.float64(0.1), None, np.int64(7)], "float8[]")]  # numpy scalars as their Python values
        for values, kind in cases:
            got = driver.execute(f"SELECT %s::{kind}", [array_literal(values)]).fetchone()[0]  # type: ignore[union-attr]
            assert got == values, kind
        nan = driver.execute("SELECT %s::float8[]", [array_literal([math.nan])]).fetchone()[0]  # type: ignore[union-attr]
        assert math.isnan(nan[0])


def test_fetch_one_gives_what_sqlalchemy_gives(engine: Engine) -> None:
    """`fetch_one` (the driver's cursor on PostgreSQL, SQL compiled once) returns the row
    SQLAlchemy returns for the same module-level statement: JSON decoded, a LIMIT's own value
    bound, None when no row matches; a second call reuses the compiled text."""
    from sqlalchemy import bindparam, select

    from monitor.store.bulk import _COMPILED, fetch_one
    from monitor.store.models import MonitoredModel

    oldest = (select(Prediction.ts).where(Prediction.model_id == MonitoredModel.id)
              .order_by(Prediction.ts).limit(1).scalar_subquery())
    statement = select(MonitoredModel.id, MonitoredModel.classes, oldest).where(
        MonitoredModel.name == bindparam("name"))
    with engine.begin() as conn:
        model = conn.execute(insert(MonitoredModel).values(name="x'; --", classes=["a", "é"],
                                                           minority_classes=[])).inserted_primary_key[0]
        conn.execute(insert(Prediction), [
            {"model_id": model, "prediction_id": f"p{i}", "ts": ts, "bucket_start": ts, "slice_id": 1,
             "predicted": "a", "content_hash": 0} for i, ts in enumerate([50, 20, 90])])
        for name in ["x'; --", "x'; --", "absent"]:
            expected = conn.execute(statement, {"name": name}).first()
            assert fetch_one(conn, statement, {"name": name}) == (None if expected is None else tuple(expected))
        assert fetch_one(conn, statement, {"name": "x'; --"}) == (model, ["a", "é"], 20)
        # a statement whose id an earlier, collected one had: the cached SQL is not reused
        other = select(MonitoredModel.name).where(MonitoredModel.id == bindparam("id"))
        _COMPILED[id(other)] = _COMPILED.get(id(statement), (statement, "SELECT 1", {}))
        assert fetch_one(conn, other, {"id": model}) == ("x'; --",)


def test_a_large_lookup_joined_with_the_array_finds_what_any_finds(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: from JOIN_LOOKUP text ids on, the table is joined with the unnested array
    (`= ANY` of a large array is planned element by element in every partition). Across weekly
    partitions, with hostile ids, ids asked twice, and time bounds, it returns exactly the rows
    `= ANY` returns, each once."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the joined lookup is PostgreSQL's")
    from monitor.store import bulk
    from monitor.store.partitions import ensure_weeks, partitions, week_start

    week = 7 * 86_400
    stored = [*HOSTILE, *(f"id-{i}" for i in range(600))]
    with engine.begin() as conn:
        ensure_weeks(conn, "predictions", {week_start(1_700_000_000 + k * week) for k in range(10)})
        assert len(partitions(conn, "predictions")) >= 10
        model = conn.execute(text("INSERT INTO monitored_models (name, created_at) VALUES ('m', CURRENT_TIMESTAMP) "
                                  "RETURNING id")).scalar_one()
        conn.execute(insert(Prediction), [
            {"model_id": model, "prediction_id": pid, "ts": 1_700_000_000 + (i % 9) * week + i, "bucket_start": 0,
             "slice_id": 0, "predicted": "a", "content_hash": i} for i, pid in enumerate(stored)])
        asked = [*HOSTILE, *HOSTILE[:5], *(f"id-{i}" for i in range(0, 900, 3)), "id-7", "missing", 'missing"']
        cases = [{}, {"at_least": {"ts": 1_700_000_000 + 3 * week}},
                 {"at_least": {"ts": 1_700_000_000 + 2 * week}, "below": {"ts": 1_700_000_000 + 6 * week}}]
        for bounds in cases:
            lookups = {}
            for name, threshold in (("any", 10**9), ("joined", 1)):
                monkeypatch.setattr(bulk, "JOIN_LOOKUP", threshold)
                lookups[name] = select_in(conn, Prediction.__table__, key_column="prediction_id", keys=asked,
                                          columns=["ts", "content_hash"], equal={"model_id": model}, **bounds)
            assert sorted(lookups["joined"]) == sorted(lookups["any"]) and len(lookups["any"]) > 100, bounds
            assert len({row[0] for row in lookups["joined"]}) == len(lookups["joined"])  # each id once
        spread = conn.execute(text("SELECT COUNT(DISTINCT tableoid) FROM predictions")).scalar_one()
        assert spread >= 9  # the rows are in 9 weekly partitions
        monkeypatch.undo()
        many = [*asked, *(f"absent-{i}" for i in range(bulk.JOIN_LOOKUP))]  # the default threshold
        found = select_in(conn, Prediction.__table__, key_column="prediction_id", keys=many,
                          columns=["content_hash"], equal={"model_id": model})
    expected = {pid: i for i, pid in enumerate(stored)}
    assert sorted(found) == sorted({(pid, expected[pid]) for pid in asked if pid in expected})
