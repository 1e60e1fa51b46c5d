"""The Data page warns about segment attributes that overflowed their value limit: rows
whose segment value is "(other)" (how ingestion counts values past
`limits.max_segment_values`), written through the real ingest pipeline on both backends."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from dashboards.data.segments import DEFAULT_MAX_SEGMENT_VALUES, segment_value_limit
from monitor.config import parse_config
from monitor.context import load_context
from monitor.ingest.pipeline import ingest_frame
from monitor.store.db import make_engine
from tests.dashboards.helpers import page, running_app, text_of

START = 1_704_067_200  # 2024-01-01


def config(db_url: str, tmp_path: Path, **limits: int):
    models = [{"name": name, "classes": ["neg", "pos"], "minority_classes": ["pos"],
               "segments": ["user", "region"], "bucket": "1h", **({"limits": limits} if limits else {})}
              for name in ("loans", "fraud")]
    return parse_config({"database_url": db_url, "models": models}, base_dir=tmp_path)


def ingest(db_url: str, model_config, users: list[str], regions: list[str]) -> None:
    frame = pd.DataFrame({"prediction_id": [f"p{i}" for i in range(len(users))],
                          "timestamp": [START + 3600 * i for i in range(len(users))],
                          "prediction": "neg", "user": users, "region": regions})
    engine = make_engine(db_url)
    with engine.begin() as conn:
        result = ingest_frame(conn, load_context(conn, model_config), "predictions", frame)
    engine.dispose()
    assert result.rejects.empty if hasattr(result.rejects, "empty") else not result.rejects


def test_a_segment_with_an_other_value_gets_one_warning_per_model_and_attribute(db_url: str, tmp_path: Path) -> None:
    cfg = config(db_url, tmp_path, max_segment_values=50)
    ingest(db_url, cfg.model("loans"), ["u1", "u2", "(other)", "(other)"], ["north", "south", "north", "north"])
    ingest(db_url, cfg.model("fraud"), ["u1", "u2", "u3", "u4"], ["north", "(other)", "east", "west"])
    with running_app(cfg):
        *_, loans = page("data").update_data(None, "loans")
        *_, fraud = page("data").update_data(None, "fraud")
        *_, every = page("data").update_data(None, None)
    assert len(loans) == 1
    assert text_of(loans) == ("Model loans:  segment 'user' has more than 50 distinct values; new values are "
                              "counted as (other) (setting: limits.max_segment_values)")
    assert len(fraud) == 1 and "segment 'region' has more than 50" in text_of(fraud)
    assert [text_of(w).split(":")[0] for w in every] == ["Model fraud", "Model loans"]


def test_no_warning_while_every_value_is_counted_apart(db_url: str, tmp_path: Path) -> None:
    cfg = config(db_url, tmp_path)
    ingest(db_url, cfg.model("loans"), ["u1", "other", "(others)"], ["north", "south", "other region"])
    with running_app(cfg):
        *_, warnings = page("data").update_data(None, "loans")
    assert warnings == []


def test_the_limit_comes_from_the_model_config_else_500() -> None:
    assert segment_value_limit(SimpleNamespace(limits=SimpleNamespace(max_segment_values=20))) == 20
    assert segment_value_limit(SimpleNamespace(limits={"max_segment_values": 30})) == 30
    assert segment_value_limit(SimpleNamespace()) == DEFAULT_MAX_SEGMENT_VALUES == 500
