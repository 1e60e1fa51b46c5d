"""Daily roll-ups: after real ingestion (late, duplicated and corrected labels, two clock
times) each `<table>_daily` holds exactly its hourly table's day sums, whole-day windows read
from it give the same numbers as from the hourly table, and migration 0005 fills it from
hourly rows written before it existed. On both backends."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text

from alembic import command
from monitor.context import load_context
from monitor.store.migrate import alembic_config, upgrade
from monitor.store.rollup import DAILY, HOURLY, rebuild
from monitor.store.windows import WindowSpec, windowed_counts
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.core.workspace import engine_for, make_workspace, small_scenario

DAY = 86_400


def _frame(conn, table) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    keys = [c.name for c in table.primary_key.columns]
    frame = pd.DataFrame(conn.execute(select(table)).fetchall(), columns=[c.name for c in table.columns])
    return frame.sort_values(keys).reset_index(drop=True)


def _day_sums(hourly: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The oracle: pandas sums of the hourly rows per UTC day (floor division)."""
    days = hourly.assign(bucket_start=hourly["bucket_start"] // DAY * DAY)
    return days.groupby(keys, as_index=False).sum().sort_values(keys).reset_index(drop=True)


def _assert_rollups_match(engine: Engine) -> dict[str, int]:
    sizes = {}
    with engine.connect() as conn:
        for name, daily in DAILY.items():
            hourly = _frame(conn, HOURLY[name])
            keys = [c.name for c in HOURLY[name].primary_key.columns]
            got, expected = _frame(conn, daily), _day_sums(hourly, keys)
            pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-9)
            sizes[name] = len(hourly)
    return sizes


@pytest.fixture
def ingested(tmp_path, db_url):  # type: ignore[no-untyped-def]
    config, _ = make_workspace(tmp_path, db_url, small_scenario())
    engine = engine_for(config)
    run_tick(engine, config, as_of=parse_time("2024-03-06T13:00:00Z"), notify=False)
    yield config, engine
    engine.dispose()


def test_ingestion_keeps_every_daily_rollup_equal_to_its_hourly_table(ingested) -> None:  # type: ignore[no-untyped-def]
    config, engine = ingested
    _assert_rollups_match(engine)  # mid-stream: labels still arriving
    run_tick(engine, config, notify=False)  # the rest, with late and corrected labels
    sizes = _assert_rollups_match(engine)
    assert all(n > 0 for n in sizes.values()), sizes  # every table was exercised


def test_whole_day_windows_read_from_the_rollup_give_the_hourly_numbers(ingested) -> None:  # type: ignore[no-untyped-def]
    config, engine = ingested
    run_tick(engine, config, notify=False)
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        sets = [(), *ctx.segment_sets, tuple(a for s in ctx.segment_sets for a in s)[:2]]
        cases = [(window, *case) for window in (DAY, 7 * DAY) for case in (
            ("confusion_counts", ["true_class", "pred_class"], ["n"]),
            ("prediction_counts", ["pred_class"], ["n"]),
            ("expected_counts", ["class_name"], ["exp_tp", "exp_fn", "var_tp", "n_scored"]))]
        for window, name, keys, values in cases:
            both = [windowed_counts(conn, HOURLY[name], model_id=ctx.model_id, spec=WindowSpec(window, DAY),
                                    segment_sets=sets, key_columns=keys, value_columns=values, rollup=rollup)
                    for rollup in (True, False)]
            assert len(both[0]) > 0
            order = ["end", "segment", "segment_value", *keys]
            rolled, hourly = (f.sort_values(order).reset_index(drop=True) for f in both)
            pd.testing.assert_frame_equal(rolled, hourly, check_dtype=False, rtol=1e-9)


def test_the_rollup_is_what_whole_day_windows_read(ingested) -> None:  # type: ignore[no-untyped-def]
    """Guards the test above against passing because both paths read the hourly table."""
    config, engine = ingested
    with engine.begin() as conn:
        conn.execute(text("UPDATE confusion_counts_daily SET n = n + 1000"))
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        table = HOURLY["confusion_counts"]
        daily = windowed_counts(conn, table, model_id=ctx.model_id, spec=WindowSpec(DAY, DAY), segment_sets=[()],
                                key_columns=["true_class", "pred_class"])
        half = windowed_counts(conn, table, model_id=ctx.model_id, spec=WindowSpec(DAY, 12 * 3600),
                               segment_sets=[()], key_columns=["true_class", "pred_class"])
    assert daily["n"].max() >= 1000  # read the (tampered) roll-up
    assert half["n"].max() < 1000  # 12-hour periods read the hourly table
    with engine.begin() as conn:
        rebuild(conn, ctx.model_id)
    _assert_rollups_match(engine)


def test_migration_0005_fills_the_rollups_from_existing_hourly_rows(ingested) -> None:  # type: ignore[no-untyped-def]
    config, engine = ingested
    run_tick(engine, config, notify=False)
    alembic = alembic_config()
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.downgrade(alembic, "0004")  # drops the roll-ups, keeps the hourly counts
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HOURLY["confusion_counts"])).scalar_one() > 0
    upgrade(engine)
    _assert_rollups_match(engine)


def test_every_hourly_count_table_registers_its_daily_twin_once_the_schema_is_loaded() -> None:
    """Roll-ups are registered by their domain (`rollup.register_daily`), not listed in store:
    a domain that forgot would silently read hourly rows and `rebuild` would skip its twin."""
    import monitor.schema  # noqa: F401 - imports every domain's models, as the engine does

    assert set(DAILY) == {"prediction_counts", "confusion_counts", "expected_counts"}
    assert {daily.name for daily in DAILY.values()} == {f"{name}_daily" for name in DAILY}
    assert {name: table.name for name, table in HOURLY.items()} == {name: name for name in DAILY}
