"""Stream tests run against the real NATS JetStream server at 127.0.0.1:4222 (or
$MONITOR_TEST_NATS_URL); without one they are skipped with the reason, unless
MONITOR_REQUIRE_NATS=1 (CI), where they fail. Each test gets a stream and subjects of its own
(unique names), deleted at the end, so tests and concurrent runs never share messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from monitor.store.models import ConfusionCount, Label, Prediction, PredictionCount

NATS_URL = os.environ.get("MONITOR_TEST_NATS_URL", "nats://127.0.0.1:4222")
CLASSES = ["ok", "fraud", "review"]
REGIONS = ["eu", "us", "apac"]
T0 = 1_790_000_000  # 2026-09-21, inside the default timestamp limits


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url() -> str:
    if not _reachable(NATS_URL):
        reason = f"stream tests need a NATS server with JetStream at {NATS_URL} (nats-server -js)"
        if os.environ.get("MONITOR_REQUIRE_NATS"):
            pytest.fail(reason + " and MONITOR_REQUIRE_NATS is set")
        pytest.skip(reason)
    return NATS_URL


@dataclass
class StreamNames:
    url: str
    stream: str
    predictions: str
    labels: str
    dead_letters: str
    model: str = "streamed"

    def toml(self, **extra: Any) -> str:
        lines = [f'url = "{self.url}"', f'stream = "{self.stream}"', f'predictions_subject = "{self.predictions}"',
                 f'labels_subject = "{self.labels}"', 'durable = "monitor"']
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        return "\n".join(lines)


@pytest.fixture
def names(nats_url: str) -> Iterator[StreamNames]:
    tag = uuid.uuid4().hex[:10]
    names = StreamNames(nats_url, f"T_{tag}", f"t{tag}.predictions", f"t{tag}.labels", f"t{tag}.dead")
    yield names
    asyncio.run(_delete_stream(nats_url, names.stream))


async def _delete_stream(url: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    await nc.close()


def publish(names: StreamNames, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish (subject, payload) pairs with JetStream acknowledgements (stored when this
    returns), creating the test's stream first when it is missing."""

    async def go() -> None:
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(names.url)
        js = nc.jetstream()
        try:
            await js.stream_info(names.stream)
        except NotFoundError:
            await js.add_stream(name=names.stream, subjects=[names.predictions, names.labels])
        pending = [await js.publish_async(subject, payload) for subject, payload in messages]
        await asyncio.gather(*pending)
        await nc.close()

    asyncio.run(go())


def write_config(directory: Path, database_url: str, names: StreamNames, **stream: Any) -> Path:
    path = directory / "monitor.toml"
    path.write_text(
        f'database_url = "{database_url}"\n\n[[models]]\nname = "{names.model}"\nclasses = {json.dumps(CLASSES)}\n'
        f'minority_classes = ["fraud"]\nsegments = ["region"]\nbucket = "1h"\n\n'
        f"[models.stream]\n{names.toml(**stream)}\n", encoding="utf-8")
    return path


def make_records(n: int, seed: int, *, id_prefix: str = "p") -> tuple[pd.DataFrame, pd.DataFrame]:
    """n predictions over two days and labels for 80% of them, arriving later."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.sort(rng.integers(0, 2 * 86400, n))
    truth = rng.choice(CLASSES, n, p=[0.8, 0.1, 0.1])
    correct = rng.random(n) < 0.7
    predicted = np.where(correct, truth, rng.choice(CLASSES, n))
    predictions = pd.DataFrame({"prediction_id": [f"{id_prefix}{i}" for i in range(n)], "timestamp": ts,
                                "prediction": predicted, "region": rng.choice(REGIONS, n)})
    labelled = rng.random(n) < 0.8
    labels = pd.DataFrame({"prediction_id": predictions["prediction_id"][labelled].to_numpy(),
                           "label": truth[labelled], "label_timestamp": ts[labelled] + rng.integers(60, 86400, labelled.sum())})
    return predictions, labels


def as_messages(frame: pd.DataFrame, subject: str, *, per_message: int, seed: int) -> list[tuple[str, bytes]]:
    """Records as messages: arrays of up to `per_message`, every third message a single object."""
    records = json.loads(frame.to_json(orient="records"))
    rng = np.random.default_rng(seed)
    messages, i = [], 0
    while i < len(records):
        size = 1 if len(messages) % 3 == 2 else int(rng.integers(1, per_message + 1))
        chunk = records[i:i + size]
        messages.append((subject, json.dumps(chunk[0] if size == 1 else chunk).encode()))
        i += size
    return messages


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything that must be exact, keyed independently of slice ids."""
    with engine.connect() as conn:
        def rows(statement: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in conn.execute(statement).all())

        return {
            "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
            "labels": conn.execute(select(func.count()).select_from(Label)).scalar_one(),
            "applied": conn.execute(select(func.count()).select_from(Label).where(Label.applied_label.is_not(None))).scalar_one(),
            "prediction_counts": rows(select(PredictionCount.bucket_start, PredictionCount.pred_class,
                                             func.sum(PredictionCount.n))
                                      .group_by(PredictionCount.bucket_start, PredictionCount.pred_class)),
            "confusion_counts": rows(select(ConfusionCount.bucket_start, ConfusionCount.true_class,
                                            ConfusionCount.pred_class, func.sum(ConfusionCount.n))
                                     .group_by(ConfusionCount.bucket_start, ConfusionCount.true_class,
                                               ConfusionCount.pred_class)),
        }


def expected_counts(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """The oracle: counts computed with pandas from the records themselves."""
    buckets = predictions.assign(bucket=predictions["timestamp"] - predictions["timestamp"] % 3600)
    per_class = buckets.groupby(["bucket", "prediction"]).size()
    joined = buckets.merge(labels, on="prediction_id")
    confusion = joined.groupby(["bucket", "label", "prediction"]).size()
    return {
        "predictions": len(predictions), "labels": len(labels), "applied": len(joined),
        "prediction_counts": sorted((int(b), c, int(n)) for (b, c), n in per_class.items()),
        "confusion_counts": sorted((int(b), t, p, int(n)) for (b, t, p), n in confusion.items()),
    }
