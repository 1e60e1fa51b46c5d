"""Retention on PostgreSQL drops whole weekly partitions and keeps exactly what the DELETE
rules keep (the same rows as on SQLite, aggregates and metrics untouched)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text, update

from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.retention import apply_retention
from monitor.store.db import make_engine
from monitor.store.models import Label, Prediction
from monitor.store.partitions import maintain_partitions, partitions
from tests.conftest import fresh_database_url
from tests.production.test_retention import NOW, _aggregates, _config, _load, _metrics

DAY = 86_400


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_retention_drops_whole_weeks_and_keeps_what_the_rules_keep(backend: str, request: pytest.FixtureRequest,
                                                                  tmp_path: Path) -> None:
    url = fresh_database_url(backend, request, tmp_path)
    engine = make_engine(url)
    config = _config(url, tmp_path, raw_predictions="90d", label_horizon="120d")
    _load(engine, config)  # one prediction a day for 200 days from Monday 2024-01-01
    maintain_partitions(engine, NOW)  # PostgreSQL: the rows leave DEFAULT for their weeks
    aggregates, metrics = _aggregates(engine), _metrics(engine, config)
    with engine.begin() as conn:  # a label not yet applied protects its prediction (and week)
        conn.execute(update(Label).where(Label.prediction_id == "d3").values(needs_apply=True))
    with engine.begin() as conn:
        dry = apply_retention(conn, config, NOW, dry_run=True)
    with engine.begin() as conn:
        summary = apply_retention(conn, config, NOW)
    # on PostgreSQL the week holding the cutoff (day 80, a Thursday) is kept whole: rows go by
    # whole weeks, up to its Monday (day 77)
    cutoff_day = 200 - 120 if backend == "sqlite" else 77
    assert (dry["predictions"], dry["labels"], dry["pending_labels"]) == (cutoff_day - 1, cutoff_day - 1, 1)
    assert (summary["predictions"], summary["labels"], summary["pending_labels"]) == (cutoff_day - 1, cutoff_day - 1, 1)
    with engine.connect() as conn:
        kept = set(conn.execute(select(Prediction.prediction_id)).scalars())
        labels = set(conn.execute(select(Label.prediction_id)).scalars())
        if backend == "postgres":
            # weeks 2..11 (days 7..76) are dropped whole; week 1 holds d3 (its label waits):
            # its other rows were DELETEd; week 12 (days 77..83) holds the cutoff: kept whole
            assert summary["partitions"] == dry["partitions"] == 2 * 10
            assert summary["weeks_before"] == "2024-03-18T00:00:00Z"
            weeks = {p.table for p in partitions(conn, "predictions")}
            assert "predictions_w20240101" in weeks and "predictions_w20240108" not in weeks
            assert "predictions_w20240311" not in weeks and "predictions_w20240318" in weeks
        else:
            assert summary["partitions"] == 0
    assert kept == {"d3"} | {f"d{i}" for i in range(cutoff_day, 200)}
    assert labels == {"d3"} | {f"d{i}" for i in range(cutoff_day, 190)}
    assert _aggregates(engine) == aggregates
    pd.testing.assert_frame_equal(_metrics(engine, config), metrics)
    with engine.begin() as conn:  # nothing more to do at the same clock
        again = apply_retention(conn, config, NOW)
    assert (again["predictions"], again["partitions"]) == (0, 0)
    engine.dispose()


def test_a_week_with_rows_of_an_unconfigured_model_is_not_dropped(request: pytest.FixtureRequest,
                                                                  tmp_path: Path) -> None:
    url = fresh_database_url("postgres", request, tmp_path)
    engine = make_engine(url)
    config = _config(url, tmp_path, raw_predictions="90d", label_horizon="90d")  # by whole weeks: up to day 105
    _load(engine, config)
    from monitor.config import parse_config

    gone = parse_config({"database_url": url, "models": [{"name": "retired", "classes": ["a", "b"]}]},
                        base_dir=tmp_path)
    with engine.begin() as conn:  # a model no longer configured, with a row in week 3
        ctx = load_context(conn, gone.model("retired"))
        ingest_frame(conn, ctx, "predictions", pd.DataFrame(
            {"prediction_id": ["r1"], "timestamp": [1_704_067_200 + 15 * DAY], "prediction": ["a"]}), as_of=NOW)
    maintain_partitions(engine, NOW)
    with engine.begin() as conn:
        summary = apply_retention(conn, config, NOW)
    with engine.connect() as conn:
        weeks = {p.table for p in partitions(conn, "predictions")}
        assert "predictions_w20240115" in weeks and "predictions_w20240108" not in weeks
        assert conn.execute(text("SELECT prediction_id FROM predictions_w20240115")).scalars().all() == ["r1"]
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 200 - 105 + 1
    assert summary["predictions"] == 105
    engine.dispose()
