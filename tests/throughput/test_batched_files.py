"""Small files loaded together (`monitor.ingest.files`: one validation, lookup and insert per
batch) store exactly what loading them one after the other stores (`ledger.LOAD_TOGETHER =
False`: `pipeline.load_predictions` / `load_labels` per file): every table, the ledger's counts
per file and the rejects per file (row, field, reason), on files made to disagree with each
other: duplicates inside a file and across files (identical and conflicting), rows stored by an
earlier tick, label corrections across files (newer, older, the same label), bad rows, rows not
yet visible, mixed formats and a file without score columns.
(A kill -9 inside a batch of many small files: tests/core/test_kill_and_cli.py.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text

import monitor.ingest.ledger as ledger
from monitor.config import ModelConfig, load_config
from monitor.context import context_from_row, ensure_model
from monitor.simulate import simulate, write_config, write_logs
from monitor.store.db import make_engine
from tests.conftest import fresh_database_url
from tests.core.workspace import small_scenario
from tests.throughput.test_batches import _ingest, assert_same_tables


def _hostile(root: Path, db_url: str):  # type: ignore[no-untyped-def]
    scenario = small_scenario(days=4, rows_per_day=500)
    data = simulate(scenario, seed=5)
    written = write_logs(data, root, fmt="jsonl", files_per_day=3)
    preds, labels = data.predictions, data.labels
    folder, label_folder = root / "predictions", root / "labels"
    # a CSV file repeating rows of the first day: identical ones, conflicting ones (other
    # class), and duplicates inside the file; some rows not yet visible at the cut
    first = pd.read_json(written["predictions"][0], lines=True, dtype=False)
    again = first.iloc[:40].copy()
    conflicting = first.iloc[40:60].copy()
    conflicting["prediction"] = conflicting["prediction"].map(
        {c: scenario.classes[(i + 1) % len(scenario.classes)] for i, c in enumerate(scenario.classes)})
    inside = preds.iloc[-30:].copy()
    inside["prediction_id"] = [f"dup{i % 10}" for i in range(30)]
    inside.iloc[10:20, inside.columns.get_loc("prediction")] = scenario.classes[0]
    late = preds.iloc[-20:].copy()
    late["prediction_id"] = [f"late{i}" for i in range(20)]
    late["timestamp"] = "2024-03-09T00:00:00Z"
    bad = preds.iloc[:6].copy()
    bad["prediction_id"] = [f"bad{i}" for i in range(6)]
    bad = bad.astype({"timestamp": object, "prediction": object})
    bad.iloc[0, bad.columns.get_loc("prediction")] = "no-such-class"
    bad.iloc[1, bad.columns.get_loc("timestamp")] = "yesterday"
    bad.iloc[2, bad.columns.get_loc("prediction_id")] = ""
    pd.concat([again, conflicting, inside, late, bad]).to_csv(folder / "zz_mixed.csv", index=False)
    # the same ids again in a parquet file without scores: a file of other columns
    noscores = pd.concat([again.iloc[:10], conflicting.iloc[:5], inside.iloc[:12]])
    noscores = noscores.drop(columns=[c for c in noscores.columns if c.startswith("score_")])
    noscores["prediction_id"] = noscores["prediction_id"].astype(str)
    noscores.to_parquet(folder / "zz_noscores.parquet", index=False)
    # labels: corrections of earlier labels (other label, later), older ones, the same label,
    # duplicates inside a file, labels of unknown ids and of the predictions above
    base = labels.iloc[:60].copy()
    other = base.copy()
    other["label"] = other["label"].map(
        {c: scenario.classes[(i + 1) % len(scenario.classes)] for i, c in enumerate(scenario.classes)})
    newer = other.iloc[:20].assign(label_timestamp="2024-03-04T12:00:00Z")
    older = other.iloc[20:40].assign(label_timestamp="2024-03-01T00:00:01Z")
    same = base.iloc[40:60].assign(label_timestamp="2024-03-04T13:00:00Z")
    twice = other.iloc[:10].assign(label_timestamp="2024-03-04T14:00:00Z")
    unknown = base.iloc[:5].assign(prediction_id=[f"nobody{i}" for i in range(5)])
    dups = pd.DataFrame({"prediction_id": ["dup1", "dup2", "dup1", "late1"],
                         "label": [scenario.classes[0], scenario.classes[1], scenario.classes[1], scenario.classes[0]],
                         "label_timestamp": ["2024-03-04T10:00:00Z"] * 4})
    pd.concat([newer, older]).to_csv(label_folder / "zz_a.csv", index=False)
    pd.concat([same, twice, unknown, dups]).to_json(label_folder / "zz_b.jsonl", orient="records", lines=True)
    pd.concat([newer.iloc[:5].assign(label_timestamp="2024-03-04T15:00:00Z"), base.iloc[5:8]]).to_parquet(
        label_folder / "zz_c.parquet", index=False)
    return scenario


def _rejects_and_ledger(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rejects = pd.read_sql_query(text("SELECT kind, source, row_number, field, reason FROM rejected_rows "
                                         "ORDER BY kind, source, row_number, field"), conn)
        files = pd.read_sql_query(text("SELECT kind, path, status, rows_read, rows_accepted, rows_rejected, "
                                       "rows_waiting, visible_until FROM ingested_files ORDER BY kind, path"), conn)
    engine.dispose()
    return rejects, files


@pytest.mark.slow
def test_files_loaded_together_store_what_one_by_one_stores(tmp_path, db_url, request, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="monitor.ingest.ledger")
    scenario = _hostile(tmp_path, db_url)
    cuts = [scenario.start_epoch + 2 * 86_400, scenario.start_epoch + 5 * 86_400]  # two ticks: rows stored earlier
    config = load_config(write_config(tmp_path, scenario, database_url=db_url))
    together = [_ingest(config, cut) for cut in cuts]
    assert "one by one" not in caplog.text  # loaded together indeed
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    one_url = fresh_database_url(backend, request, tmp_path)
    one_config = load_config(write_config(tmp_path, scenario, database_url=one_url))
    monkeypatch.setattr(ledger, "LOAD_TOGETHER", False)
    alone = [_ingest(one_config, cut) for cut in cuts]
    for a, b in zip(together, alone, strict=True):
        assert not a.errors and not b.errors
        assert (a.files_read, a.predictions, a.labels, a.skipped, a.rejected, a.waiting) == \
            (b.files_read, b.predictions, b.labels, b.skipped, b.rejected, b.waiting)
    assert together[1].rejected > 5 and together[1].skipped > 20 and together[0].waiting > 0
    assert_same_tables(db_url, one_url)
    (got_rejects, got_files), (want_rejects, want_files) = _rejects_and_ledger(db_url), _rejects_and_ledger(one_url)
    pd.testing.assert_frame_equal(got_rejects, want_rejects, check_dtype=False)
    pd.testing.assert_frame_equal(got_files, want_files, check_dtype=False)


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-executemany", "one-by-one"])
def test_ledger_rows_of_a_batch_follow_the_files_order(engine, monkeypatch, one_statement):  # type: ignore[no-untyped-def]
    """`ledger._ledger_rows`: a file with a ledger row keeps its id, new files get theirs in
    the batch's order, whether one executemany returns them (where the dialect keeps their
    order) or they are inserted one by one (where it cannot)."""
    if not one_statement:
        monkeypatch.setattr(engine.dialect, "insert_executemany_returning_sort_by_parameter_order", False)
    elif not engine.dialect.insert_executemany_returning_sort_by_parameter_order:
        pytest.skip("this SQLite cannot return the ids of an executemany in order (3.35+ can)")
    model = ModelConfig(name="m", classes=["neg", "pos"])
    with engine.begin() as conn:
        ctx = context_from_row(model, ensure_model(conn, model), None, None)
        existing = ledger._ledger_row(conn, ctx, "predictions", Path("b.csv"), None)
        row = conn.execute(select(ledger.FILES).where(ledger.FILES.c.id == existing)).one()
        files = [(Path(f"{name}.csv"), row if name == "b" else None) for name in "cbad"]
        ids = ledger._ledger_rows(conn, ctx, "predictions", files)
        paths = {int(i): p for i, p in conn.execute(select(ledger.FILES.c.id, ledger.FILES.c.path))}
    assert ids[1] == existing and len(set(ids)) == 4
    assert [paths[i] for i in ids] == ["c.csv", "b.csv", "a.csv", "d.csv"]


def test_the_last_of_two_corrections_of_an_id_in_one_batch_wins(tmp_path, db_url):  # type: ignore[no-untyped-def]
    """Two label files of one batch correct the same prediction one after the other: the
    stored label, and the counts, are those of the later file (PostgreSQL writes a batch's
    corrections in one joined UPDATE, where either row of the same id could win)."""
    scenario = small_scenario(days=2, rows_per_day=200)
    write_logs(simulate(scenario, seed=4), tmp_path, fmt="csv")
    config = load_config(write_config(tmp_path, scenario, database_url=db_url))
    as_of = scenario.start_epoch + 3 * 86_400
    first = _ingest(config, as_of)
    assert not first.errors and first.labels > 100
    engine = make_engine(db_url)
    by_class = text("SELECT true_class, sum(n) FROM confusion_counts GROUP BY true_class")
    with engine.connect() as conn:
        pid, label, stamp = conn.execute(text("SELECT prediction_id, label, label_ts FROM labels "
                                              "WHERE applied_label IS NOT NULL ORDER BY label_ts, prediction_id")).first()  # type: ignore[misc]
        before = {k: int(v) for k, v in conn.execute(by_class).all()}
    middle, last = [c for c in scenario.classes if c != label][:2]
    for name, new, later in (("zz_1.csv", middle, 1), ("zz_2.csv", last, 2)):  # newer than the stored label
        pd.DataFrame({"prediction_id": [pid], "label": [new], "label_timestamp": [
            pd.Timestamp(int(stamp) + later, unit="s", tz="UTC").isoformat()]}).to_csv(tmp_path / "labels" / name, index=False)
    second = _ingest(config, as_of)
    assert not second.errors and second.labels == 2  # both files, one batch: two corrections
    with engine.connect() as conn:
        assert conn.execute(text("SELECT label FROM labels WHERE prediction_id = :p"), {"p": pid}).scalar_one() == last
        after = {k: int(v) for k, v in conn.execute(by_class).all()}
    engine.dispose()
    moved = {c: after.get(c, 0) - before.get(c, 0) for c in scenario.classes}
    assert moved == {c: (-1 if c == label else 1 if c == last else 0) for c in scenario.classes}
