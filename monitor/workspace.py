"""`monitor init`: an example monitor.toml (every key of docs/contract.md §2, explained) and its database."""

from __future__ import annotations

from pathlib import Path

from monitor.config import load_config
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade

EXAMPLE = '''# monitor.toml: what to monitor and where the logs are. Docs: README.md and docs/.
database_url = "sqlite:///monitor.db"        # any SQLAlchemy URL; PostgreSQL for production
dashboard_url = "http://127.0.0.1:8050"       # used for links in alert messages

[[models]]
name = "triage"
classes = ["routine", "urgent", "critical"]  # optional: else learned from the reference labels
minority_classes = ["critical"]              # optional: else every class under 10% of reference labels
segments = ["sex", "age_band", "region"]     # subgroup attributes (columns of the prediction log)
intersections = false                        # true: also every pair of segments
features = ["num_0", "num_1", "cat_0"]       # drift-monitored inputs (type inferred)
bucket = "1h"                                # storage grain
# reference = "data/reference.parquet"       # labelled data with predictions (same columns + label)
# reference_period = ["2024-01-01", "2024-02-01"]   # or: a production period as reference

[models.predictions]
path = "logs/predictions/*"                  # glob, relative to this file
# id = "prediction_id"; timestamp = "timestamp"; prediction = "prediction"; score_prefix = "score_"

[models.labels]
path = "logs/labels/*"
# id = "prediction_id"; label = "label"; timestamp = "label_timestamp"

[[models.alerts]]                            # optional: a model with none gets the default rule
name = "minority-recall"
metric = "recall"
classes = "minority"                         # or a list of classes
segments = ["region"]                        # the overall series is always included
window = "7d"
min_support = 30                             # labelled positives needed before the rule may fire
min_drop = 0.10                              # smallest drop below the reference worth an alert
# floor = 0.5                                # optional absolute bar on recall

[[channels]]                                 # where alerts go; several allowed
type = "log"                                 # webhook | slack | email | log
# url = "http://127.0.0.1:9000/hook"         # webhook and slack

[scheduler]
interval = "60s"                             # how often `monitor run` ingests and evaluates
'''


def init_workspace(directory: Path, *, force: bool = False) -> Path:
    """Write DIRECTORY/monitor.toml (unless it exists and not `force`) and migrate its database."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "monitor.toml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists: pass --force to overwrite it")
    path.write_text(EXAMPLE, encoding="utf-8")
    (directory / "logs" / "predictions").mkdir(parents=True, exist_ok=True)
    (directory / "logs" / "labels").mkdir(parents=True, exist_ok=True)
    config = load_config(path)
    engine = make_engine(config.database_url)
    upgrade(engine)
    engine.dispose()
    return path
