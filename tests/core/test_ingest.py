"""Ingestion rules of docs/contract.md §1: idempotency, bad rows, failed files, delayed labels."""

from __future__ import annotations

import os

import pandas as pd

from monitor.config import load_config
from monitor.context import load_context
from monitor.ingest.report import files_frame, rejects_frame
from monitor.metrics.service import metrics_frame
from monitor.store.db import make_engine
from monitor.store.windows import WindowSpec
from monitor.tick import run_tick
from monitor.timeutil import parse_time
from tests.core.handmade import workspace, write

DAY = 86400
PREDICTIONS = """
prediction_id,timestamp,prediction,score_pos,score_neg,group,x
a1,2024-01-01T01:00:00Z,pos,0.9,0.1,g1,1.5
a2,2024-01-01T02:00:00Z,neg,0.2,0.8,g1,0.3
a3,2024-01-01T03:00:00+02:00,neg,0.4,0.6,g2,2.0
a4,1704078000,pos,0.7,0.3,,0.1
"""


def _cells(config) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    engine = make_engine(config.database_url)
    with engine.connect() as conn:
        ctx = load_context(conn, config.models[0])
        frame = metrics_frame(conn, ctx, WindowSpec(DAY, DAY), segment="*,group")
    engine.dispose()
    return frame


def _overall(frame: pd.DataFrame, cls: str = "pos") -> pd.Series:
    row = frame[(frame["segment"] == "*") & (frame["class"] == cls)]
    assert len(row) == 1
    return row.iloc[0]


def test_labels_join_late_out_of_order_twice_and_corrected(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    # a label that arrives before its prediction waits; a duplicate is ignored
    write(tmp_path / "labels" / "l1.csv", """
prediction_id,label,label_timestamp
a3,pos,2024-01-02T00:00:00Z
a3,pos,2024-01-02T05:00:00Z
a1,neg,2024-01-02T00:00:00Z
""")
    run_tick(engine, config, notify=False)
    assert _cells(config).empty  # no predictions yet: nothing to count
    write(tmp_path / "predictions" / "p1.csv", PREDICTIONS)
    run_tick(engine, config, notify=False)
    row = _overall(_cells(config))
    assert (row["n_predictions"], row["n_labeled"], row["tp"], row["fp"], row["fn"]) == (4, 2, 0, 1, 1)
    # a correction (later label_timestamp) moves the counts: a1 was pos after all
    write(tmp_path / "labels" / "l2.csv", """
prediction_id,label,label_timestamp
a1,pos,2024-01-03T00:00:00Z
a2,neg,2024-01-03T00:00:00Z
""")
    run_tick(engine, config, notify=False)
    row = _overall(_cells(config))
    assert (row["n_labeled"], row["tp"], row["fp"], row["fn"], row["tn"]) == (3, 1, 0, 1, 1)
    assert row["recall"] == 0.5
    # a stale label (older than the one applied) does not undo the correction
    write(tmp_path / "labels" / "l3.csv", """
prediction_id,label,label_timestamp
a1,neg,2024-01-02T12:00:00Z
""")
    run_tick(engine, config, notify=False)
    assert _overall(_cells(config))["tp"] == 1
    # timezone offsets and epoch seconds land in the right bucket; missing segment is (missing)
    groups = _cells(config)
    assert set(groups.loc[groups["segment"] == "group", "segment_value"]) == {"g1", "g2", "(missing)"}
    engine.dispose()


def test_reingesting_touched_or_grown_files_never_double_counts(tmp_path, db_url):
    config = load_config(workspace(tmp_path, db_url))
    engine = make_engine(config.database_url)
    path = write(tmp_path / "predictions" / "p1.csv", PREDICTIONS)
    write(tmp_path / "labels" / "l1.csv", "prediction_id,label\na1,pos\na2,neg\n")
    run_tick(engine, config, notify=False)
    first = _cells(config)
    run_tick(engine, config, notify=False)
    os.utime(path, (1_800_000_000, 1_800_000_000))  # touched, same content
    run_tick(engine, config, notify=False)
    pd.testing.assert_frame_equal(first, _cells(config))
    # the log grows: only the new row is added
    with path.open("a") as handle:
        handle.write("a5,2024-01-01T05:00:00Z,neg,0.1,0.9,g2,0.0\n")
    run_tick(engine, config, notify=False)
    assert _overall(_cells(config))["n_predictions"] == 5
    ledger = files_frame(engine.connect(), ["m"])
    assert set(ledger["status"]) == {"done"}
    engine.dispose()


def test_bad_rows_are_rejected_with_row_field_and_reason_and_good_rows_go_in(tmp_path, db_url):
    config = load_config(workspace(tmp_path, db_url))
    engine = make_engine(config.database_url)
    write(tmp_path / "predictions" / "p1.csv", """
prediction_id,timestamp,prediction,score_pos,score_neg,group,x
b1,2024-01-01T01:00:00Z,pos,0.9,0.1,g1,1
,2024-01-01T01:00:00Z,pos,0.9,0.1,g1,1
b3,yesterday,pos,0.9,0.1,g1,1
b4,2024-01-01T01:00:00Z,maybe,0.9,0.1,g1,1
b5,2024-01-01T01:00:00Z,pos,1.5,0.1,g1,1
b6,2024-01-01T01:00:00Z,neg,0.1,0.9,g1,1
b6,2024-01-01T02:00:00Z,pos,0.9,0.1,g1,1
b7,2024-01-01T01:00:00Z,,0.9,0.1,g1,1
""")
    write(tmp_path / "labels" / "l1.csv", """
prediction_id,label
b1,pos
b6,unknown-class
,neg
""")
    (tmp_path / "predictions" / "broken.parquet").write_bytes(b"this is not parquet")
    summary = run_tick(engine, config, notify=False)
    assert summary.models[0].files_failed == 1
    with engine.connect() as conn:
        rejects = rejects_frame(conn, ["m"])
    by_row = {(r.kind, r.row): (r.field, r.reason) for r in rejects.itertuples() if r.row is not pd.NA and r.row is not None}
    assert by_row[("predictions", 2)][0] == "prediction_id"
    assert by_row[("predictions", 3)] == ("timestamp", "unparsable timestamp (use ISO 8601 or epoch seconds)")
    assert by_row[("predictions", 4)][0] == "prediction" and "unknown class 'maybe'" in by_row[("predictions", 4)][1]
    assert by_row[("predictions", 5)] == ("score_pos", "score outside [0, 1]")
    assert by_row[("predictions", 7)][1].startswith("conflicting duplicate prediction")
    assert by_row[("predictions", 8)] == ("prediction", "missing required field")
    assert by_row[("labels", 2)][0] == "label"
    assert by_row[("labels", 3)][0] == "prediction_id"
    failed = rejects[rejects["reason"].str.startswith("file failed")]
    assert len(failed) == 1 and failed.iloc[0]["source"].endswith("broken.parquet")
    row = _overall(_cells(config))
    assert (row["n_predictions"], row["n_labeled"], row["tp"]) == (2, 1, 1)
    # an unchanged failed file is not retried on every tick; the good ones stay counted once
    again = run_tick(engine, config, notify=False)
    assert again.models[0].files_failed == 0
    assert _overall(_cells(config))["n_predictions"] == 2
    engine.dispose()


def test_as_of_hides_later_predictions_and_labels_until_the_clock_passes_them(tmp_path, sqlite_url):
    config = load_config(workspace(tmp_path, sqlite_url))
    engine = make_engine(config.database_url)
    write(tmp_path / "predictions" / "p1.csv", PREDICTIONS)
    write(tmp_path / "labels" / "l1.csv", """
prediction_id,label,label_timestamp
a1,pos,2024-01-01T12:00:00Z
a2,pos,2024-01-05T00:00:00Z
""")
    run_tick(engine, config, as_of=parse_time("2024-01-01T02:30:00Z"), notify=False)
    row = _overall(_cells(config))
    assert (row["n_predictions"], row["n_labeled"]) == (3, 0)  # a3 is 01:00Z (+02:00 offset), a4 is 03:00Z
    run_tick(engine, config, as_of=parse_time("2024-01-02T00:00:00Z"), notify=False)
    row = _overall(_cells(config))
    assert (row["n_predictions"], row["n_labeled"], row["tp"]) == (4, 1, 1)
    run_tick(engine, config, as_of=parse_time("2024-01-06T00:00:00Z"), notify=False)
    row = _overall(_cells(config))
    assert (row["n_labeled"], row["fn"]) == (2, 1)
    engine.dispose()


def test_every_file_format_gives_the_same_numbers(tmp_path, sqlite_url):
    frames = {}
    source = pd.read_csv(pd.io.common.StringIO(PREDICTIONS.strip()), dtype=str)
    labels = pd.DataFrame({"prediction_id": ["a1", "a2", "a3"], "label": ["pos", "neg", "pos"]})
    for fmt in ("csv.gz", "jsonl", "jsonl.gz", "parquet"):
        root = tmp_path / fmt.replace(".", "_")
        root.mkdir()
        config = load_config(workspace(root, f"sqlite:///{root}/m.db"))
        from monitor.store.migrate import upgrade

        upgrade(make_engine(config.database_url))
        typed = source.assign(score_pos=source["score_pos"].astype(float), score_neg=source["score_neg"].astype(float))
        if fmt.startswith("csv"):
            typed.to_csv(root / "predictions" / f"p.{fmt}", index=False)
            labels.to_csv(root / "labels" / f"l.{fmt}", index=False)
        elif fmt.startswith("jsonl"):
            typed.to_json(root / "predictions" / f"p.{fmt}", orient="records", lines=True)
            labels.to_json(root / "labels" / f"l.{fmt}", orient="records", lines=True)
        else:
            typed.to_parquet(root / "predictions" / "p.parquet")
            labels.to_parquet(root / "labels" / "l.parquet")
        run_tick(make_engine(config.database_url), config, notify=False)
        frames[fmt] = _overall(_cells(config))[["n_predictions", "n_labeled", "tp", "fp", "fn", "tn"]].tolist()
    assert len({tuple(v) for v in frames.values()}) == 1, frames
    assert frames["parquet"] == [4, 3, 1, 0, 1, 1]
