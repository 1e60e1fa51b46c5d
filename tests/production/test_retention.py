"""Retention deletes old raw rows and keeps every aggregate (both backends)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select, update

from monitor.cli import main
from monitor.config import parse_config
from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.metrics.service import metrics_frame
from monitor.retention import apply_retention
from monitor.store.models import (
    ConfusionCount,
    IngestRun,
    Label,
    LabelArrivalCount,
    Prediction,
    PredictionCount,
    RejectedRow,
)
from monitor.store.windows import WindowSpec

DAY = 86400
NOW = 1_704_067_200 + 200 * DAY  # 200 days after 2024-01-01


def _config(db_url: str, tmp_path: Path, **retention: str):
    return parse_config({"database_url": db_url, "retention": retention,
                         "models": [{"name": "m", "classes": ["a", "b"], "segments": ["g"]}]}, base_dir=tmp_path)


def _load(engine: Engine, config) -> None:
    """One prediction per day for 200 days (ids d0..d199), labelled except the last 10,
    plus a pending label whose prediction never came (day 5)."""
    predictions = pd.DataFrame({
        "prediction_id": [f"d{i}" for i in range(200)],
        "timestamp": [1_704_067_200 + i * DAY + 3600 for i in range(200)],
        "prediction": ["a" if i % 3 else "b" for i in range(200)],
        "g": ["x" if i % 2 else "y" for i in range(200)],
    })
    labels = pd.DataFrame({
        "prediction_id": [f"d{i}" for i in range(190)] + ["ghost"],
        "label": ["a" if i % 4 else "b" for i in range(190)] + ["a"],
        "label_timestamp": [1_704_067_200 + i * DAY + 7200 for i in range(190)] + [1_704_067_200 + 5 * DAY],
    })
    with engine.begin() as conn:
        ctx = load_context(conn, config.model("m"))
        ingest_frame(conn, ctx, "predictions", predictions, as_of=NOW)
        ingest_frame(conn, ctx, "labels", labels, as_of=NOW)


def _aggregates(engine: Engine) -> dict:
    with engine.connect() as conn:
        return {table.__tablename__: conn.execute(select(func.sum(table.n))).scalar_one()
                for table in (ConfusionCount, PredictionCount, LabelArrivalCount)}


def _metrics(engine: Engine, config) -> pd.DataFrame:
    with engine.connect() as conn:
        ctx = load_context(conn, config.model("m"))
        frame = metrics_frame(conn, ctx, WindowSpec(30 * DAY, 30 * DAY), as_of=NOW)
        return frame.drop(columns=["expected_coverage", "provisional"])


def test_old_raw_rows_go_and_aggregates_and_metrics_stay(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = _config(db_url, tmp_path, raw_predictions="90d", label_horizon="120d")
    _load(engine, config)
    aggregates, metrics = _aggregates(engine), _metrics(engine, config)
    # a label not yet counted protects its (old) prediction until a tick applies it
    with engine.begin() as conn:
        conn.execute(update(Label).where(Label.prediction_id == "d3").values(needs_apply=True))
    with engine.begin() as conn:
        summary = apply_retention(conn, config, NOW)
    cutoff_day = 200 - 120  # days 0..79 are older than the cutoff (each at +1h of its day)
    assert summary["cutoff"] == "2024-03-21T00:00:00Z"
    assert (summary["predictions"], summary["labels"], summary["pending_labels"]) == (cutoff_day - 1, cutoff_day - 1, 1)
    with engine.connect() as conn:
        kept = set(conn.execute(select(Prediction.prediction_id)).scalars())
        labels = set(conn.execute(select(Label.prediction_id)).scalars())
    assert kept == {"d3"} | {f"d{i}" for i in range(cutoff_day, 200)}
    assert labels == {"d3"} | {f"d{i}" for i in range(cutoff_day, 190)}
    assert _aggregates(engine) == aggregates
    pd.testing.assert_frame_equal(_metrics(engine, config), metrics)
    with engine.begin() as conn:  # nothing more to do at the same clock
        assert apply_retention(conn, config, NOW)["predictions"] == 0


def test_old_rejects_and_tick_records_go_recent_and_unfinished_ones_stay(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = _config(db_url, tmp_path, raw_predictions="90d", label_horizon="30d")
    old, recent = datetime(2024, 1, 2, tzinfo=timezone.utc), datetime(2024, 7, 1, tzinfo=timezone.utc)
    with engine.begin() as conn:
        model_id = load_context(conn, config.model("m")).model_id
        for when in (old, recent):
            conn.execute(insert(RejectedRow).values(model_id=model_id, kind="predictions", source="api",
                                                    reason="bad", created_at=when))
        conn.execute(insert(IngestRun).values(started_at=old, finished_at=old, status="ok"))
        conn.execute(insert(IngestRun).values(started_at=old, status="running"))  # never finished: kept
        conn.execute(insert(IngestRun).values(started_at=recent, finished_at=recent, status="ok"))
    with engine.begin() as conn:
        assert apply_retention(conn, config, NOW, dry_run=True)["ingest_runs"] == 1
    with engine.begin() as conn:
        summary = apply_retention(conn, config, NOW)
    assert (summary["rejected_rows"], summary["ingest_runs"]) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(RejectedRow.created_at)).scalars().all() == [recent]
        assert sorted(conn.execute(select(IngestRun.status)).scalars().all()) == ["ok", "running"]


def test_retention_is_off_without_raw_predictions(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = _config(db_url, tmp_path)
    _load(engine, config)
    with engine.begin() as conn:
        summary = apply_retention(conn, config, NOW)
    assert summary["enabled"] is False and summary["predictions"] == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 200


def test_the_command_counts_on_dry_run_then_deletes(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = _config(db_url, tmp_path, raw_predictions="30d", label_horizon="30d")
    _load(engine, config)
    config_file = tmp_path / "monitor.toml"
    config_file.write_text(f'database_url = "{db_url}"\n[retention]\nraw_predictions = "30d"\nlabel_horizon = "30d"\n'
                           '[[models]]\nname = "m"\nclasses = ["a", "b"]\nsegments = ["g"]\n', encoding="utf-8")
    runner = CliRunner()
    dry = runner.invoke(main, ["--config", str(config_file), "retention", "--dry-run", "--now", str(NOW)])
    assert dry.exit_code == 0, dry.output
    assert "would delete 170 predictions, 170 labels and 1 pending labels" in dry.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 200
    done = runner.invoke(main, ["--config", str(config_file), "retention", "--now", str(NOW)])
    assert done.exit_code == 0, done.output
    assert "deleted 170 predictions" in done.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Prediction)).scalar_one() == 30
