"""A sweep's label files join with the predictions the sweep has just stored in memory
(`monitor.ingest.recent`) instead of looking each id up: the join must give exactly what the
lookup gives, must never hold a prediction whose batch did not commit, and a whole sweep must
store the same tables with it as without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import text

import monitor.ingest.recent as recent_module
from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.labels import stored_predictions_of
from monitor.ingest.ledger import BatchFailed, discover, ingest_files
from monitor.ingest.pipeline import ingest_frame
from monitor.ingest.recent import RecentPredictions, compact
from monitor.simulate import simulate, write_config, write_logs
from monitor.store.db import make_engine
from tests.conftest import fresh_database_url
from tests.core.workspace import small_scenario
from tests.throughput.test_batched_files import _hostile
from tests.throughput.test_batches import _ingest, assert_same_tables


def _workspace(root, db_url):  # type: ignore[no-untyped-def]
    scenario = small_scenario(days=4, rows_per_day=500)
    data = simulate(scenario, seed=11)
    write_logs(data, root, fmt="csv", files_per_day=2)
    config = load_config(write_config(root, scenario, database_url=db_url))
    return config, data, scenario.start_epoch + 5 * 86_400


def test_the_join_with_the_sweeps_predictions_is_what_the_lookup_finds(tmp_path, db_url):  # type: ignore[no-untyped-def]
    config, data, as_of = _workspace(tmp_path, db_url)
    engine = make_engine(db_url)
    model = config.models[0]
    with engine.begin() as conn:
        ctx = load_context(conn, model)
    paths = discover(ctx, "predictions", config.base_dir)
    recent = RecentPredictions()
    kept = ingest_files(engine, ctx, "predictions", paths[: len(paths) // 2], as_of=as_of, recent=recent)
    ingest_files(engine, ctx, "predictions", paths[len(paths) // 2:], as_of=as_of)  # stored, not kept
    api = data.predictions.iloc[:50].assign(prediction_id=[f"api{i}" for i in range(50)])
    with engine.begin() as conn:  # stored by another way in (HTTP), not kept either
        assert ingest_frame(conn, ctx, "predictions", api, as_of=as_of).accepted == 50
    kept_rows = sum(o.result.accepted for o in kept)
    assert kept_rows > 500 and len(recent) == kept_rows
    ids = [*data.predictions["prediction_id"].astype(str), *api["prediction_id"], *[f"nobody{i}" for i in range(30)]]
    ids.append(ids[0])  # twice in one batch: found once in memory, once by the lookup
    order = np.random.default_rng(2).permutation(len(ids))
    fresh = pd.DataFrame({"prediction_id": pd.Series(np.asarray(ids, dtype=object)[order], dtype=object),
                          "label": "x", "label_ts": np.full(len(ids), as_of, dtype=np.int64)})
    with engine.connect() as conn:
        joined, found = stored_predictions_of(conn, ctx, fresh, recent)
        looked_up, found_too = stored_predictions_of(conn, ctx, fresh, None)
    engine.dispose()
    hits = recent.find(fresh["prediction_id"].to_numpy())[0] >= 0
    assert hits.sum() == kept_rows  # every kept id came from memory (the duplicate once)
    np.testing.assert_array_equal(found, found_too)
    assert found.sum() == len(data.predictions) + 50 + 1  # every stored one, whichever way it came
    pd.testing.assert_frame_equal(joined, looked_up)


def test_a_batch_that_did_not_commit_is_not_kept(tmp_path, sqlite_url):  # type: ignore[no-untyped-def]
    config, _, as_of = _workspace(tmp_path, sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        ctx = load_context(conn, config.models[0])
        # a fault of the database itself: the batch's counts cannot be written
        conn.execute(text("CREATE TRIGGER broken BEFORE INSERT ON prediction_counts "
                          "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"))
    paths = discover(ctx, "predictions", config.base_dir)
    recent = RecentPredictions()
    with pytest.raises(BatchFailed):
        ingest_files(engine, ctx, "predictions", paths, as_of=as_of, recent=recent)
    assert len(recent) == 0
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 0
        conn.execute(text("DROP TRIGGER broken"))
    outcomes = ingest_files(engine, ctx, "predictions", paths, as_of=as_of, recent=recent)
    engine.dispose()
    assert len(recent) == sum(o.result.accepted for o in outcomes) > 0


def test_only_the_newest_rows_are_kept_past_the_bound() -> None:
    recent = RecentPredictions(max_rows=5)

    def batch(first: int, n: int) -> pd.DataFrame:
        return compact(pd.DataFrame({"prediction_id": [f"p{i}" for i in range(first, first + n)], "bucket_start": 0,
                                     "slice_id": 1, "predicted": "a", "ts": range(first, first + n)}))

    recent.add([batch(0, 3)])
    recent.add([batch(3, 3)])  # 6 rows: the oldest goes
    assert len(recent) == 5
    at, table = recent.find(np.asarray(["p0", "p1", "p5", "p9"], dtype=object))
    assert at[0] == -1 and at[3] == -1 and table["ts"].to_numpy()[at[1:3]].tolist() == [1, 5]
    recent.add([batch(6, 7)])  # more than the bound in one batch: its newest rows
    at, table = recent.find(np.asarray(["p7", "p8", "p12"], dtype=object))
    assert len(recent) == 5 and at[0] == -1 and table["ts"].to_numpy()[at[1:]].tolist() == [8, 12]


def test_long_ids_are_bounded_by_bytes_and_a_trimmed_batch_lets_its_buffers_go() -> None:
    """200-character ids (the longest the store takes) are some 250 bytes a row: the byte
    bound, not the row bound, keeps memory in check, and what is kept of a trimmed batch is
    copied out of the batch's buffers (a slice would keep them all alive)."""
    bound = 1 << 20
    recent = RecentPredictions(max_rows=1_000_000, max_bytes=bound)

    def batch(first: int, n: int) -> pd.DataFrame:
        return compact(pd.DataFrame({"prediction_id": [f"{i:0200d}" for i in range(first, first + n)],
                                     "bucket_start": 0, "slice_id": 1, "predicted": "a", "ts": range(first, first + n)}))

    for first in range(0, 12_000, 3_000):  # 4 batches of some 700 KiB each
        recent.add([batch(first, 3_000)])
        assert recent.bytes <= bound
    assert 3_000 < len(recent) < 6_000
    at, table = recent.find(np.asarray([f"{i:0200d}" for i in (0, 11_999, 12_000 - len(recent))], dtype=object))
    assert at[0] == -1 and table["ts"].to_numpy()[at[1:]].tolist() == [11_999, 12_000 - len(recent)]
    held = sum(pa.array(table[c]).get_total_buffer_size() if isinstance(table[c].dtype, pd.ArrowDtype)
               else table[c].to_numpy().nbytes for c in table.columns)
    assert held <= bound + 64 * 1024  # (plus Arrow's padding)


@pytest.mark.slow
def test_a_sweep_stores_the_same_with_and_without_the_join(tmp_path, db_url, request, monkeypatch):  # type: ignore[no-untyped-def]
    scenario = _hostile(tmp_path, db_url)  # duplicates, conflicts, corrections, unknown ids, bad rows
    cuts = [scenario.start_epoch + 2 * 86_400, scenario.start_epoch + 5 * 86_400]
    config = load_config(write_config(tmp_path, scenario, database_url=db_url))
    joined = [_ingest(config, cut) for cut in cuts]
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    other_url = fresh_database_url(backend, request, tmp_path)
    other = load_config(write_config(tmp_path, scenario, database_url=other_url))
    monkeypatch.setattr(recent_module, "MAX_ROWS", 0)  # nothing kept: every label's prediction looked up
    looked_up = [_ingest(other, cut) for cut in cuts]
    for a, b in zip(joined, looked_up, strict=True):
        assert not a.errors and not b.errors
        assert (a.predictions, a.labels, a.skipped, a.rejected, a.waiting) == \
            (b.predictions, b.labels, b.skipped, b.rejected, b.waiting)
    assert_same_tables(db_url, other_url)
