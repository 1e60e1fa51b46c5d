"""The read layer (`monitor.read`): reads never write, a model never ingested reads as
empty with the usual columns, the default window is derived once, and the front ends hold
no SQL and no service lookups by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.api import create_api_app
from monitor.cli import main
from monitor.config import parse_config
from monitor.metrics.service import EXTRA_COLUMNS, METRIC_COLUMNS
from monitor.read import alerts, ledger, quality
from monitor.read.context import UNSTORED, is_stored, model_context, stored_context
from monitor.read.windows import default_spec, latest_spec, query_spec
from monitor.store.db import make_engine
from monitor.store.models import MonitoredModel
from monitor.store.windows import WindowSpec
from tests.dashboards.seeding import Seeded

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400
FRONT_ENDS = [*sorted((ROOT / "dashboards" / "data").glob("*.py")), *sorted((ROOT / "monitor" / "api").glob("*.py")),
              ROOT / "monitor" / "cli.py", ROOT / "monitor" / "cli_common.py",
              *sorted((ROOT / "monitor" / "commands").glob("*.py"))]


def _fresh(db_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'database_url = "{db_url}"\n[[models]]\nname = "fresh"\nclasses = ["a", "b"]\n'
                    'minority_classes = ["b"]\nsegments = ["region"]\n', encoding="utf-8")
    return path


def _model_rows(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(MonitoredModel)).scalar_one())
    finally:
        engine.dispose()


def test_a_model_never_ingested_reads_as_empty_and_nothing_is_written(db_url: str, tmp_path: Path) -> None:
    config = parse_config({"database_url": db_url, "models": [{
        "name": "fresh", "classes": ["a", "b"], "minority_classes": ["b"], "segments": ["region"]}]})
    model = config.model("fresh")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = model_context(conn, model)
        assert (ctx.model_id, ctx.classes, ctx.minority_classes) == (UNSTORED, ["a", "b"], ["b"])
        assert not is_stored(ctx) and stored_context(conn, model) is None
        spec = query_spec(model, 7 * DAY, DAY)
        frame = quality.metrics(conn, ctx, spec)
        assert frame.empty and list(frame.columns) == METRIC_COLUMNS + EXTRA_COLUMNS
        assert quality.drift(conn, ctx, spec).empty and quality.fairness(conn, ctx, spec).empty
        assert quality.label_arrival(conn, ctx).empty
        assert default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=90) is None
        assert alerts.alerts(conn, model="fresh").empty
        assert ledger.ledger_summary(conn, "fresh") == (None, 0, 0)
        conn.rollback()
    engine.dispose()
    assert _model_rows(db_url) == 0


def test_cli_and_api_reads_of_a_model_never_ingested_answer_empty_without_writing(sqlite_url: str,
                                                                                  tmp_path: Path) -> None:
    path = _fresh(sqlite_url, tmp_path)
    for command in ("metrics", "drift", "fairness"):
        result = CliRunner().invoke(main, ["--config", str(path), command, "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == []
    client = create_api_app(parse_config({"database_url": sqlite_url, "models": [{
        "name": "fresh", "classes": ["a", "b"], "minority_classes": ["b"], "segments": ["region"]}]})).test_client()
    models = client.get("/api/v1/models").get_json()
    assert models == [{"name": "fresh", "classes": ["a", "b"], "minority_classes": ["b"], "segments": ["region"],
                       "features": [], "bucket": "1h"}]
    for kind in ("metrics", "drift", "fairness"):
        answer = client.get(f"/api/v1/models/fresh/{kind}")
        assert (answer.status_code, answer.get_json()) == (200, [])
    assert client.get("/metrics").status_code == 200
    assert _model_rows(sqlite_url) == 0


def test_the_default_window_is_the_last_span_of_data_and_latest_is_its_newest_end(seeded_sqlite: Seeded) -> None:
    from monitor.config import load_config
    from monitor.store.models import PredictionCount
    from monitor.store.windows import data_range

    config = load_config(seeded_sqlite.config_path)
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        ctx = model_context(conn, config.models[0])
        first, last = data_range(conn, PredictionCount.__table__, ctx.model_id)  # type: ignore[arg-type,misc]
        spec = default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=7)
        wide = default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=90)
        conn.rollback()
    engine.dispose()
    assert spec is not None and wide is not None
    newest = -(-(last + ctx.bucket) // DAY) * DAY  # the first day boundary after the newest bucket
    assert (spec.end, spec.start) == (newest, newest - 7 * DAY)
    assert wide.start == -(-(first + 1) // DAY) * DAY  # not before the first data
    assert latest_spec(spec) == WindowSpec(7 * DAY, DAY, newest, newest, max_ends=spec.max_ends)
    assert latest_spec(spec, steps=3).start == newest - 3 * DAY
    assert latest_spec(spec, steps=30).start == spec.start  # never before the chosen range


def test_the_data_pages_label_arrival_is_coverage_by_age(seeded: Seeded) -> None:
    """The Data page once looked `coverage_by_age` up in the wrong module and drew its own
    fallback, whose columns (`age_hours`) the real function does not have."""
    from dashboards.data import ledger
    from dashboards.figures import core as figures
    from dashboards.filters import Filters
    from monitor.config import load_config
    from monitor.metrics.maturity import coverage_by_age
    from tests.dashboards.helpers import running_app

    with running_app(seeded.config_path):
        arrival = ledger.label_arrival(Filters(model="triage"))
    config = load_config(seeded.config_path)
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        expected = coverage_by_age(conn, model_context(conn, config.model("triage")))
        conn.rollback()
    engine.dispose()
    assert list(arrival.frame.columns) == ["delay_hours", "coverage"] and arrival.message is None
    pd.testing.assert_frame_equal(arrival.frame.reset_index(drop=True), expected)
    assert expected["coverage"].iloc[-1] > 0.5
    figure = figures.label_arrival(arrival.frame)
    assert list(figure.data[0].y) == list(expected["coverage"])
    assert list(figure.data[0].x) == list(expected["delay_hours"].clip(lower=0.5))


def test_front_ends_run_no_sql_and_look_no_service_up_by_name() -> None:
    sql = re.compile(r"\b(select|text|optional|call_service)\(|\.execute\(|_sqlite_pragmas")
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in FRONT_ENDS
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if sql.search(line)]
    assert offenders == []
