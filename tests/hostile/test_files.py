"""Hostile files: one malformed row is rejected by itself with its row number; every good
row of the same file goes in, counted exactly; files that grow or are swapped are read right.
"""

from __future__ import annotations

import json
import logging
import os

import pandas as pd
import pytest

from tests.hostile.workspace import (
    HEADER,
    assert_counted_exactly,
    assert_reads_work,
    csv_lines,
    good_rows,
    jsonl_lines,
    rejects,
    tick,
    workspace,
)


def _row_rejects(config_path) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    found = rejects(config_path)
    found = found[found["row"].notna()].copy()
    found["row"] = found["row"].astype(int)
    return found.set_index("row").sort_index()


def _interleave(good: list[bytes], bad: list[bytes], every: int = 5) -> tuple[bytes, list[int]]:
    """Good lines with a bad one after every `every`; the 1-based positions of the bad ones."""
    out, positions, bad_left = [], [], list(bad)
    for index, line in enumerate(good):
        out.append(line)
        if (index + 1) % every == 0 and bad_left:
            out.append(bad_left.pop(0))
            positions.append(len(out))
    for line in bad_left:
        out.append(line)
        positions.append(len(out))
    return b"\n".join(out) + b"\n", positions


CSV_HOSTILE = {
    "extra fields": b"bad1,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,surplus,more",
    "unclosed quote": b'bad2,2024-01-01T05:00:00Z,pos,0.9,0.1,"g1,1.0',
    "a million fields": b"bad3" + b"," * 999_000,  # just under limits.max_record_bytes
    "latin-1 byte": b"bad4,2024-01-01T05:00:00Z,pos,0.9,0.1,caf\xe9,1.0",
    "record too large": b"bad5,2024-01-01T05:00:00Z,pos,0.9,0.1," + b"g" * 2_000_000 + b",1.0",
    "NUL byte": b"bad6,2024-01-01T05:00:00Z,pos,0.9,0.1,g\x001,1.0\xff",
}
CSV_REASONS = ["fields, the header has", "unclosed quote", "fields, the header has", "not valid UTF-8",
               "limits.max_record_bytes", "not valid UTF-8"]


def test_a_csv_file_keeps_its_good_rows_when_some_rows_are_malformed(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    body, positions = _interleave([line.encode() for line in csv_lines(good)], list(CSV_HOSTILE.values()))
    (tmp_path / "predictions" / "p.csv").write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\n" + body)
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected, summary.models[0].files_failed) == (40, 6, 0)
    found = _row_rejects(config_path)
    assert list(found.index) == positions  # row numbers count data records, as pandas does
    for position, reason in zip(positions, CSV_REASONS):
        assert reason in found.loc[position, "reason"], found.loc[position, "reason"]
        assert f"(line {position + 1} of the file)" in found.loc[position, "reason"]
    assert_counted_exactly(config_path, good)
    assert_reads_work(config_path)


def test_csv_row_numbers_agree_between_clean_and_damaged_files(tmp_path, sqlite_url):
    """Blank lines and a quoted field over two lines: the row numbers of rejects in a damaged
    file are those a clean read gives (data records, not lines)."""
    config_path = workspace(tmp_path, sqlite_url)
    good = good_rows(6)
    lines = csv_lines(good)
    multi_line = 'q1,2024-01-01T05:00:00Z,pos,0.9,0.1,"g1\nstill g1",1.0'
    text = "\n".join([HEADER, lines[0], "", lines[1], multi_line, lines[2],
                      "bad,2024-01-01T05:00:00Z,maybe,0.5,0.5,g1,1", lines[3]]) + "\n"
    (tmp_path / "predictions" / "clean.csv").write_text(text)
    damaged = text + "extra,1,2,3,4,5,6,7,8\n"
    (tmp_path / "predictions" / "damaged.csv").write_text(damaged.replace("q1,", "q2,").replace("bad,", "bad2,"))
    tick(config_path)
    found = rejects(config_path)
    by_file = {os.path.basename(source): frame for source, frame in found.groupby("source")}
    clean_rows = sorted(by_file["clean.csv"]["row"].astype(int))
    damaged_rows = sorted(by_file["damaged.csv"]["row"].astype(int))
    assert clean_rows == [5]  # the unknown class: header, blank line and the two-line field not counted
    assert damaged_rows == [5, 7]


JSONL_HOSTILE = {
    "not JSON": b'{"prediction_id": "bad1", "timestamp": ',
    "not an object": b'["bad2", "2024-01-01T05:00:00Z", "pos"]',
    "too many keys": json.dumps({f"k{i}": i for i in range(5_000)}).encode(),
    "a million keys": json.dumps({f"k{i}": i for i in range(1_000_000)}).encode(),
    "latin-1 byte": b'{"prediction_id": "bad4", "group": "caf\xe9"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}
JSONL_REASONS = ["not valid JSON", "not a JSON object", "limits.max_fields", "limits.max_record_bytes",
                 "not valid UTF-8", "JSON"]


def test_a_json_lines_file_keeps_its_good_rows_when_some_lines_are_malformed(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    body, positions = _interleave([line.encode() for line in jsonl_lines(good)], list(JSONL_HOSTILE.values()))
    (tmp_path / "predictions" / "p.jsonl").write_bytes(b"\xef\xbb\xbf" + body)  # a BOM, as CSV allows
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected, summary.models[0].files_failed) == (40, 6, 0)
    found = _row_rejects(config_path)
    assert list(found.index) == positions  # row = line number
    for position, reason in zip(positions, JSONL_REASONS):
        assert reason in found.loc[position, "reason"], found.loc[position, "reason"]
    assert_counted_exactly(config_path, good)
    assert_reads_work(config_path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_64_bit_integer_ids_stay_exact_and_their_labels_join(tmp_path, db_url, fmt):
    config_path = workspace(tmp_path, db_url)
    big = [2**60 + 1, 2**60 + 2, 2**53 + 1, 12345678901234567891, 7]
    good = good_rows(len(big))
    records = [{**record, "prediction_id": pid} for record, pid in zip(good.to_dict(orient="records"), big)]
    labels = [{"prediction_id": pid, "label": "pos", "label_timestamp": "2024-01-03T00:00:00Z"} for pid in big]
    if fmt == "jsonl":
        (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
        (tmp_path / "labels" / "l.jsonl").write_text("\n".join(json.dumps(r) for r in labels) + "\n")
    else:
        pd.DataFrame(records).to_csv(tmp_path / "predictions" / "p.csv", index=False)
        pd.DataFrame(labels).to_csv(tmp_path / "labels" / "l.csv", index=False)
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].labels, summary.models[0].rejected) == (5, 5, 0)
    from sqlalchemy import text

    from monitor.config import load_config
    from monitor.store.db import make_engine

    engine = make_engine(load_config(config_path).database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT p.prediction_id, l.applied_label IS NOT NULL FROM predictions p"
                                   " JOIN labels l ON l.prediction_id = p.prediction_id")).all()
    engine.dispose()
    assert sorted(stored) == sorted((str(pid), True) for pid in big)


def test_a_half_written_last_line_waits_for_the_next_tick(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(6)
    lines = csv_lines(good)
    path = tmp_path / "predictions" / "growing.csv"
    half = lines[5][: lines[5].index(",g") + 2]  # cut inside the group value: "g1" would be "g"
    path.write_text("\n".join([HEADER, *lines[:5], half]))
    first = tick(config_path)
    assert (first.models[0].predictions, first.models[0].rejected, first.models[0].waiting) == (5, 0, 1)
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    second = tick(config_path)
    assert (second.models[0].predictions, second.models[0].rejected) == (1, 0)
    assert_counted_exactly(config_path, good)


def test_a_last_line_without_newline_is_read_once_the_file_stops_changing(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    good = good_rows(4)
    (tmp_path / "predictions" / "p.csv").write_text("\n".join([HEADER, *csv_lines(good)]))
    assert tick(config_path).models[0].predictions == 3
    assert tick(config_path).models[0].predictions == 1  # unchanged since: complete
    assert tick(config_path).models[0].files_read == 0
    assert_counted_exactly(config_path, good)


def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    first, second = good_rows(8, prefix="a"), good_rows(8, prefix="b")
    path = tmp_path / "predictions" / "p.csv"
    first.to_csv(path, index=False)
    stat = path.stat()
    assert tick(config_path).models[0].predictions == 8
    second.to_csv(path, index=False)
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tick(config_path).models[0].predictions == 8
    assert_counted_exactly(config_path, pd.concat([first, second]))


def test_a_settled_file_is_hashed_again_in_its_hour_of_the_day(tmp_path, db_url):
    """A file older than a day whose size, mtime, inode and ctime match its ledger row keeps
    its recorded fingerprint (no hashing) except in one hour of 24; a rewrite on a file system
    whose ctime says little is then still noticed within a day. Here the ledger row is set to
    what such a file system would show: the new inode and ctime, the old head-and-tail hash."""
    from sqlalchemy import select, update

    from monitor.config import load_config
    from monitor.ingest.ledger import FILES, VERIFY_HOURS, _needs_read, _verify_now
    from monitor.store.db import make_engine

    config_path = workspace(tmp_path, db_url)
    path = tmp_path / "predictions" / "p.csv"
    good_rows(8, prefix="a").to_csv(path, index=False)
    old = 1_700_000_000  # more than a day ago
    os.utime(path, (old, old))
    assert tick(config_path).models[0].predictions == 8
    second = good_rows(8, prefix="b")
    second.to_csv(path, index=False)
    os.utime(path, (old, old))
    stat = path.stat()
    engine = make_engine(load_config(config_path).database_url)
    with engine.begin() as conn:
        before = conn.execute(select(FILES).where(FILES.c.path == str(path))).one()
        recorded = before.fingerprint
        blind = f"{stat.st_ino}:{stat.st_ctime_ns}:{recorded.split(':')[2]}"
        conn.execute(update(FILES).where(FILES.c.path == str(path)).values(fingerprint=blind))
        row = conn.execute(select(FILES).where(FILES.c.path == str(path))).one()
    engine.dispose()
    assert _needs_read(before, stat, path, None, verify=False)[0] is True  # here the ctime moved
    assert _needs_read(row, stat, path, None, verify=False)[0] is False  # stat alone: unchanged
    assert _needs_read(row, stat, path, None, verify=True)[0] is True  # its hash: rewritten
    hours = [_verify_now(str(path), stat, old + 2 * 86400 + hour * 3600) for hour in range(VERIFY_HOURS)]
    assert sum(hours) == 1
    assert all(_verify_now(str(path), stat, old + hour * 3600) for hour in range(VERIFY_HOURS))  # recent


def test_a_bounded_scan_passes_over_settled_files_outside_their_hour(tmp_path, db_url):
    """The scheduler's later ticks (`full_scan=False`) read new files at once but do not look
    at a file settled for a day outside its hour; `monitor ingest` (a full scan) sees the change."""
    import time

    from monitor.ingest.ledger import VERIFY_HOURS, _hour

    config_path = workspace(tmp_path, db_url)
    hour = int(time.time() // 3600) % VERIFY_HOURS
    # a name whose hour is neither this one nor the next (the test may cross an hour)
    name = next(f"p{i}.csv" for i in range(100)
                if _hour(str(tmp_path / "predictions" / f"p{i}.csv")) not in (hour, (hour + 1) % VERIFY_HOURS))
    path = tmp_path / "predictions" / name
    first = good_rows(8, prefix="a")
    first.to_csv(path, index=False)
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))
    assert tick(config_path, full_scan=False).models[0].predictions == 8  # new: read at once
    more = good_rows(4, prefix="b")
    more.to_csv(path, mode="a", header=False, index=False)
    os.utime(path, (old, old))  # changed, yet settled by its mtime
    passed = tick(config_path, full_scan=False).models[0]
    assert (passed.files_read, passed.files_failed, passed.errors) == (0, 0, [])  # not looked at, not failed
    fresh = tmp_path / "predictions" / "q.csv"
    third = good_rows(3, prefix="c")
    third.to_csv(fresh, index=False)
    assert tick(config_path, full_scan=False).models[0].predictions == 3  # a new file still goes in
    assert tick(config_path).models[0].predictions == 4  # the full scan notices the change
    assert_counted_exactly(config_path, pd.concat([first, more, third]))


def test_the_schedulers_first_tick_looks_at_every_file_and_later_ones_do_not(tmp_path, db_url):
    """`monitor run` scans in full once per process (changes made while it was down), then
    passes over settled files outside their hour."""
    import time

    from sqlalchemy import select

    from monitor import scheduler
    from monitor.config import load_config
    from monitor.ingest.ledger import VERIFY_HOURS, _hour
    from monitor.store.db import make_engine
    from monitor.store.models import IngestRun

    config_path = workspace(tmp_path, db_url)
    config = load_config(config_path)
    hour = int(time.time() // 3600) % VERIFY_HOURS
    name = next(f"p{i}.csv" for i in range(100)
                if _hour(str(tmp_path / "predictions" / f"p{i}.csv")) not in (hour, (hour + 1) % VERIFY_HOURS))
    path = tmp_path / "predictions" / name
    first, more = good_rows(8, prefix="a"), good_rows(4, prefix="b")
    first.to_csv(path, index=False)
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))
    scheduler._scanned.discard(config.database_url)
    try:
        scheduler._tick(config)  # the first: a full scan
        more.to_csv(path, mode="a", header=False, index=False)
        os.utime(path, (old, old))
        scheduler._tick(config)  # later: the settled file is passed over
        assert_counted_exactly(config_path, first)
        engine = make_engine(config.database_url)
        with engine.connect() as conn:
            last = conn.execute(select(IngestRun.status, IngestRun.summary).order_by(IngestRun.id.desc())).first()
        engine.dispose()
        assert last is not None and last.status == "ok" and last.summary["models"][0]["files_failed"] == 0
        scheduler._scanned.remove(config.database_url)  # as after a restart
        scheduler._tick(config)
        assert_counted_exactly(config_path, pd.concat([first, more]))
    finally:
        scheduler._scanned.discard(config.database_url)


def test_files_are_listed_in_path_order(tmp_path, sqlite_url):
    """Names kept as strings still sort as `Path` objects do (component by component)."""
    from pathlib import Path

    from monitor.config import load_config
    from monitor.context import ModelContext
    from monitor.ingest.ledger import discover

    config_path = workspace(tmp_path, sqlite_url)
    config = load_config(config_path)
    predictions = tmp_path / "predictions"
    for name in ["a-b/c.csv", "a/b.csv", "a/B.csv", "a.csv", "a/b/c.csv", "z.txt", "dir.csv/x.csv"]:
        (predictions / name).parent.mkdir(parents=True, exist_ok=True)
        (predictions / name).write_text(HEADER + "\n")
    model = config.models[0].model_copy(update={"predictions": config.models[0].predictions.model_copy(
        update={"path": "predictions/**/*"})})
    found = discover(ModelContext(config=model, model_id=1, classes=[], minority_classes=[]), "predictions",
                     config.base_dir)
    assert found == [str(p) for p in sorted(Path(p) for p in found)]
    assert {Path(p).relative_to(predictions).as_posix() for p in found} == {
        "a-b/c.csv", "a/b.csv", "a/B.csv", "a.csv", "a/b/c.csv", "dir.csv", "dir.csv/x.csv"}
    assert tick(config_path).models[0].errors == []  # the directory named like a file is passed over


def test_a_glob_that_matches_nothing_is_reported_once(tmp_path, sqlite_url, caplog):
    config_path = workspace(tmp_path, sqlite_url)
    caplog.set_level(logging.WARNING, logger="monitor.ingest.ledger")
    tick(config_path)
    tick(config_path)
    said = [r.getMessage() for r in caplog.records if "matches no" in r.getMessage()]
    assert len(said) == 2  # predictions and labels, once each
    assert "predictions path" in said[0] and str(tmp_path / "predictions") in said[0]


def test_long_ids_and_values_are_rejected_with_their_length(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    bad = good.head(3).copy()
    bad["prediction_id"] = ["i" * 5000, "long-group", "long-version"]
    bad.loc[bad.index[1], "group"] = "v" * 300
    bad["model_version"] = [None, None, "w" * 201]
    huge = good.head(1).assign(prediction_id="huge", group="z" * 50_000_000)  # a 50 MB value
    rows = pd.concat([good, bad, huge], ignore_index=True)
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows.to_dict(orient="records")) + "\n")
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected) == (10, 4)
    found = _row_rejects(config_path)
    assert list(found["reason"]) == [
        "id of 5,000 characters (limit 200)", "segment value of 300 characters (limit 200)",
        "model version of 201 characters (limit 200)",
        "line of 50,000,164 bytes (limit 1,000,000: limits.max_record_bytes)"]
    assert_counted_exactly(config_path, good)


def test_segment_values_past_the_limit_are_counted_as_other(tmp_path, db_url, caplog):
    config_path = workspace(tmp_path, db_url, extra="[models.limits]\nmax_segment_values = 20")
    good = good_rows(300)
    good["group"] = [f"user{i}" for i in range(300)]  # an id used as a segment
    good.iloc[:150].to_csv(tmp_path / "predictions" / "p1.csv", index=False)
    caplog.set_level(logging.WARNING, logger="monitor.ingest.pipeline")
    tick(config_path)
    good.iloc[150:].to_csv(tmp_path / "predictions" / "p2.csv", index=False)
    summary = tick(config_path)
    assert summary.models[0].rejected == 0
    expected = good.assign(group=good["group"].where(good.index < 20, "(other)"))
    assert_counted_exactly(config_path, expected)
    assert any("more than 20 distinct values" in r.getMessage() for r in caplog.records)
    assert_reads_work(config_path)


def test_nul_characters_and_lone_surrogates_reject_their_row_only(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    jsonl = [line.encode() for line in jsonl_lines(good)]
    jsonl += [b'{"prediction_id": "n1", "timestamp": "2024-01-01T05:00:00Z", "prediction": "pos", "group": "a\\u0000b"}',
              b'{"prediction_id": "s1", "timestamp": "2024-01-01T05:00:00Z", "prediction": "pos", "group": "\\ud800"}']
    (tmp_path / "predictions" / "p.jsonl").write_bytes(b"\n".join(jsonl) + b"\n")
    more = good_rows(5, prefix="c")
    csv = [HEADER.encode(), *(line.encode() for line in csv_lines(more)), b"n2,2024-01-01T05:00:00Z,pos,0.9,0.1,g\x001,1.0"]
    (tmp_path / "predictions" / "p.csv").write_bytes(b"\n".join(csv) + b"\n")
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected, summary.models[0].files_failed) == (15, 3, 0)
    reasons = sorted(rejects(config_path)["reason"])
    assert [r.split(" (line")[0] for r in reasons] == [
        "contains a NUL character", "contains a NUL character", "contains a lone UTF-16 surrogate (not valid Unicode text)"]
    assert_counted_exactly(config_path, pd.concat([good, more]))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_rows_without_any_column_the_model_reads_are_rejected_not_lost(tmp_path, sqlite_url, fmt):
    config_path = workspace(tmp_path, sqlite_url)
    foreign = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    path = tmp_path / "predictions" / f"p.{fmt}"
    if fmt == "csv":
        foreign.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(jsonl_lines(foreign)) + "\n")
    else:
        foreign.to_parquet(path)
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected) == (0, 3)
    assert set(rejects(config_path)["reason"]) == {"missing required field"}
