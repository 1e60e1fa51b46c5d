"""Small hand-written workspaces for ingest tests (exact rows, exact expectations)."""

from __future__ import annotations

from pathlib import Path

CONFIG = """
database_url = "{db_url}"

[[models]]
name = "m"
classes = ["neg", "pos"]
minority_classes = ["pos"]
segments = ["group"]
features = ["x"]
bucket = "1h"

[models.predictions]
path = "predictions/*"

[models.labels]
path = "labels/*"
"""


def workspace(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "predictions").mkdir()
    (tmp_path / "labels").mkdir()
    path = tmp_path / "monitor.toml"
    path.write_text(CONFIG.format(db_url=db_url))
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path
