"""Weekly partitions of the raw tables on PostgreSQL (migration 0011, monitor.store.partitions):
the migration of a database with data, partitions created ahead by the tick, rows of the
DEFAULT partition moved out, exact counts across a week boundary with late labels, duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import confusion_matrix
from sqlalchemy import Engine, func, inspect, select, text

from monitor.cli import main
from monitor.config import parse_config
from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.store.db import make_engine
from monitor.store.migrate import current_revision, upgrade
from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount
from monitor.store.partitions import (
    LABEL_LOOKUP_WINDOW,
    WEEK,
    default_name,
    is_partitioned,
    maintain_partitions,
    partitions,
    week_start,
)
from monitor.tick import run_tick
from tests.conftest import fresh_database_url, new_postgres_database

DAY = 86_400
MONDAY = 1_733_097_600  # 2024-12-02 00:00 UTC, a Monday: a week boundary
CLASSES = ["a", "b", "c"]


def _config(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config({"database_url": db_url, "models": [{"name": "m", "classes": CLASSES, "segments": ["g"]}]},
                        base_dir=tmp_path)


def _predictions(n: int, start: int, spacing: int, seed: int, prefix: str = "p") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "prediction_id": [f"{prefix}{i}" for i in range(n)],
        "timestamp": start + np.arange(n) * spacing,
        "prediction": rng.choice(CLASSES, n),
        "g": rng.choice(["x", "y"], n),
    })


def _ingest(engine: Engine, config, kind: str, frame: pd.DataFrame, as_of: int):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return ingest_frame(conn, load_context(conn, config.model("m")), kind, frame, as_of=as_of)


def _confusion(engine: Engine) -> np.ndarray:
    with engine.connect() as conn:
        rows = conn.execute(select(ConfusionCount.true_class, ConfusionCount.pred_class, func.sum(ConfusionCount.n))
                            .group_by(ConfusionCount.true_class, ConfusionCount.pred_class)).fetchall()
    out = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for true, pred, n in rows:
        out[CLASSES.index(true), CLASSES.index(pred)] += int(n)
    return out


def _oracle(predictions: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """sklearn's confusion matrix of each id's newest label against its prediction."""
    newest = labels.sort_values("label_timestamp", kind="stable").drop_duplicates("prediction_id", keep="last")
    joined = predictions.merge(newest, on="prediction_id")
    return confusion_matrix(joined["label"], joined["prediction"], labels=CLASSES)


def _raw(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    with engine.connect() as conn:
        predictions = pd.read_sql_query(text("SELECT * FROM predictions ORDER BY prediction_id"), conn)
        labels = pd.read_sql_query(text("SELECT * FROM labels ORDER BY prediction_id"), conn)
    return predictions, labels


def test_upgrade_converts_a_database_with_data(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = new_postgres_database(request, migrated=False)
    engine = make_engine(url)
    upgrade(engine, "0010")
    config = _config(url, tmp_path)
    predictions = _predictions(600, MONDAY - 10 * DAY, 3000, seed=1)  # ~21 days, three weeks
    first = predictions.sample(400, random_state=1)
    labels = pd.DataFrame({"prediction_id": list(first["prediction_id"]) + ["ghost"],
                           "label": list(np.random.default_rng(2).choice(CLASSES, 400)) + ["a"],
                           "label_timestamp": list(first["timestamp"] + 2 * DAY) + [MONDAY]})
    as_of = MONDAY + 30 * DAY
    _ingest(engine, config, "predictions", predictions, as_of)
    _ingest(engine, config, "labels", labels, as_of)
    before_raw, before_counts = _raw(engine), _confusion(engine)
    with engine.connect() as conn:
        assert not is_partitioned(conn, "predictions")

    config_file = tmp_path / "monitor.toml"
    config_file.write_text(f'database_url = "{url}"\n[[models]]\nname = "m"\nclasses = ["a", "b", "c"]\n'
                           'segments = ["g"]\n')
    result = CliRunner().invoke(main, ["--config", str(config_file), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert current_revision(engine) == "0017"
    with engine.connect() as conn:
        assert is_partitioned(conn, "predictions") and is_partitioned(conn, "labels")
        # migration 0012: no per-row foreign key trigger on the raw tables, kept elsewhere
        assert not any(inspect(conn).get_foreign_keys(t) for t in ("predictions", "labels", "inbox"))
        assert inspect(conn).get_foreign_keys("alerts")
        weeks = {p.lower for p in partitions(conn, "predictions")}
        assert {week_start(int(t)) for t in predictions["timestamp"]} <= weeks
        assert conn.execute(text(f"SELECT count(*) FROM {default_name('predictions')}")).scalar_one() == 0  # noqa: S608
    after_raw = _raw(engine)
    # migration 0013 drops `labeled_at`, which these rows (ingested by today's code) never set
    assert before_raw[0]["labeled_at"].isna().all()
    # migration 0017 adds `scores`, NULL for predictions without score columns (as these)
    assert after_raw[0]["scores"].isna().all()
    pd.testing.assert_frame_equal(before_raw[0].drop(columns="labeled_at"), after_raw[0].drop(columns="scores"))
    pd.testing.assert_frame_equal(before_raw[1], after_raw[1])
    assert (before_counts == _confusion(engine)).all()

    # the converted database goes on: late labels join across the weeks, corrections move
    # counts, a re-sent prediction is skipped and one with the same id and another time refused
    rest = predictions.drop(first.index)
    late = pd.DataFrame({"prediction_id": list(rest["prediction_id"]) + list(first["prediction_id"][:50]),
                         "label": list(np.random.default_rng(3).choice(CLASSES, len(rest) + 50)),
                         "label_timestamp": list(rest["timestamp"] + 5 * DAY) + [MONDAY + 20 * DAY] * 50})
    _ingest(engine, config, "labels", late, as_of)
    resent = _ingest(engine, config, "predictions", predictions.iloc[:10], as_of)
    assert (resent.accepted, resent.skipped, resent.rejected) == (0, 10, 0)
    moved = predictions.iloc[10:12].assign(timestamp=lambda f: f["timestamp"] + WEEK)
    refused = _ingest(engine, config, "predictions", moved, as_of)
    assert (refused.accepted, refused.rejected) == (0, 2)
    assert "conflicting duplicate" in refused.reasons[0]["reason"]
    all_labels = pd.concat([labels, late], ignore_index=True)
    assert (_confusion(engine) == _oracle(predictions, all_labels)).all()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 600
        assert conn.execute(select(func.sum(PredictionCount.n))).scalar_one() == 600
    engine.dispose()


def test_the_tick_creates_partitions_ahead_and_empties_default(request: pytest.FixtureRequest,
                                                              tmp_path: Path) -> None:
    url = fresh_database_url("postgres", request, tmp_path)
    engine = make_engine(url)
    config = _config(url, tmp_path)
    # rows of weeks no partition covers go to DEFAULT: the insert never fails
    old = _predictions(300, MONDAY - 8 * DAY, 3600, seed=4)  # 12.5 days over 3 weeks
    _ingest(engine, config, "predictions", old, MONDAY + 30 * DAY)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions_default")).scalar_one() == 300
    clock = MONDAY + 3 * DAY  # a Thursday
    run_tick(engine, config, as_of=clock, notify=False)
    with engine.connect() as conn:
        weeks = {p.lower for p in partitions(conn, "predictions")}
        assert {week_start(clock) + i * WEEK for i in range(3)} <= weeks  # this week and two ahead
        assert {MONDAY - 2 * WEEK, MONDAY - WEEK} <= weeks  # the weeks of the rows that were in DEFAULT
        assert {p.lower for p in partitions(conn, "labels")} >= {week_start(clock) + i * WEEK for i in range(3)}
        assert conn.execute(text("SELECT count(*) FROM predictions_default")).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 300
        # each partition holds exactly its week, with the parent's indexes
        for part in partitions(conn, "predictions"):
            if part.lower is None:
                continue
            lo, hi = conn.execute(text(f'SELECT min(ts), max(ts) FROM "{part.table}"')).one()  # noqa: S608
            assert lo is None or (part.lower <= lo and hi < part.upper)
            indexes = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"),
                                   {"t": part.table}).scalars().all()
            assert any("(model_id, prediction_id, ts)" in i for i in indexes), indexes
            assert any("(model_id, bucket_start)" in i for i in indexes), indexes
    assert maintain_partitions(engine, clock) == []  # nothing more to do
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_counts_exact_across_a_week_boundary_with_late_labels(backend: str, request: pytest.FixtureRequest,
                                                             tmp_path: Path) -> None:
    url = fresh_database_url(backend, request, tmp_path)
    engine = make_engine(url)
    config = _config(url, tmp_path)
    maintain_partitions(engine, MONDAY - WEEK)  # the weeks around the boundary exist (PostgreSQL)
    # 800 predictions from Sunday 20:00 to Monday 04:00 (the boundary in the middle)
    predictions = _predictions(800, MONDAY - 4 * 3600, 36, seed=5)
    as_of = MONDAY + 100 * DAY
    _ingest(engine, config, "predictions", predictions, as_of)
    rng = np.random.default_rng(6)
    ids = predictions["prediction_id"].to_numpy()
    # labels in three waves: days later (next week's partition of labels), beyond the lookup
    # window (found by the second pass), and corrections of some of the first wave
    waves = [
        pd.DataFrame({"prediction_id": ids[:500], "label": rng.choice(CLASSES, 500),
                      "label_timestamp": MONDAY + 3 * DAY}),
        pd.DataFrame({"prediction_id": ids[500:700], "label": rng.choice(CLASSES, 200),
                      "label_timestamp": MONDAY + LABEL_LOOKUP_WINDOW + 10 * DAY}),
        pd.DataFrame({"prediction_id": ids[:100], "label": rng.choice(CLASSES, 100),
                      "label_timestamp": MONDAY + 4 * DAY}),
        # labels before their predictions (pending), then the predictions
        pd.DataFrame({"prediction_id": [f"q{i}" for i in range(50)], "label": rng.choice(CLASSES, 50),
                      "label_timestamp": MONDAY + 5 * DAY}),
    ]
    for wave in waves:
        _ingest(engine, config, "labels", wave, as_of)
    later = _predictions(50, MONDAY - 60, 2, seed=7, prefix="q")
    _ingest(engine, config, "predictions", later, as_of)
    run_tick(engine, config, as_of=as_of, notify=False)  # applies what waited; moves DEFAULT rows
    everything = pd.concat([predictions, later], ignore_index=True)
    assert (_confusion(engine) == _oracle(everything, pd.concat(waves, ignore_index=True))).all()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Label).where(Label.needs_apply.is_(True))).scalar_one() == 0
        if backend == "postgres":
            stored = dict(conn.execute(text(
                "SELECT tableoid::regclass::text, count(*) FROM predictions GROUP BY 1")).fetchall())
            assert stored == {f"predictions_w{d}": n for d, n in (("20241125", 430), ("20241202", 420))}
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_newest_first_lookup_finds_what_one_lookup_finds(backend: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    # predictions over 12 weeks; ids looked up from every span (this week, the horizon, older,
    # unknown) and in any order, with bounds given in any order: the same rows as select_in
    from monitor.store.bulk import select_in, select_in_recent

    url = fresh_database_url(backend, request, tmp_path)
    config = _config(url, tmp_path)
    engine = make_engine(url)
    start = MONDAY - 12 * 7 * 86_400
    frame = _predictions(12 * 7 * 4, start, 6 * 3600, seed=5)
    clock = MONDAY + 86_400
    _ingest(engine, config, "predictions", frame, as_of=clock)
    maintain_partitions(engine, clock)  # the rows in DEFAULT move to their weeks
    keys = list(frame["prediction_id"].sample(120, random_state=3)) + ["nope", "p0", "p0"]
    table = Prediction.__table__
    with engine.connect() as conn:
        ctx = load_context(conn, config.model("m"))
        one = select_in(conn, table, key_column="prediction_id", keys=keys, columns=["ts", "predicted"],  # type: ignore[arg-type]
                        equal={"model_id": ctx.model_id})
        for since in ([clock - 8 * 86_400, clock - 60 * 86_400], [clock - 60 * 86_400, clock - 8 * 86_400],
                      clock - 30 * 86_400, [clock + 86_400]):
            cascade = select_in_recent(conn, table, key_column="prediction_id", keys=keys,  # type: ignore[arg-type]
                                       columns=["ts", "predicted"], equal={"model_id": ctx.model_id},
                                       time_column="ts", since=since)
            assert sorted(cascade) == sorted(one)
        weeks = len(partitions(conn, "predictions")) if backend == "postgres" else 0
    engine.dispose()
    assert len(one) == len(set(keys)) - 1  # every stored id once, the unknown one not
    assert backend == "sqlite" or weeks >= 13  # the 12 weeks, this one and those ahead
