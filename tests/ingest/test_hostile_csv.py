"""Hostile CSV (and JSON-lines) text: a row longer than its header, a delimiter at the end of
every row, a stray quote, a quoted field over the record limits, a header whose first column
has no name, a line of hundreds of megabytes in a small gzip file. Each rejects the rows at
fault by themselves, with the reason; every other row goes in; memory stays bounded; and
pandas' one-go read of a block and the record-by-record read agree on every row.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from monitor.config import Limits
from monitor.ingest import readers
from monitor.ingest.chunks import ReadState
from monitor.ingest.readers import read_all
from tests.hostile.workspace import (
    HEADER,
    STRINGS,
    assert_counted_exactly,
    csv_lines,
    good_rows,
    rejects,
    tick,
    workspace,
)

WIDER = "row has 8 fields, the header has 7"


def _row_rejects(config_path: Path) -> dict[int, str]:
    found = rejects(config_path)
    found = found[found["row"].notna()]
    return {int(r.row): r.reason for r in found.itertuples()}


def _counts(config_path: Path) -> tuple[int, int, int]:
    model = tick(config_path).models[0]
    return model.predictions, model.rejected, model.files_failed


def _file(tmp_path: Path, lines: list[str], name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_extra_field_in_the_first_row_rejects_only_that_row(tmp_path, db_url):
    """pandas took the first column for the index and shifted every column of the block."""
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    first = "k_bad,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,EXTRA"
    _file(tmp_path / "predictions", [HEADER, first, *csv_lines(good)])
    assert _counts(config_path) == (40, 1, 0)
    assert _row_rejects(config_path) == {1: f"{WIDER} (line 2 of the file)"}
    assert_counted_exactly(config_path, good)


def test_a_delimiter_at_the_end_of_every_row_loses_no_row(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    _file(tmp_path / "predictions", [HEADER, *(line + "," for line in csv_lines(good))])
    assert _counts(config_path) == (40, 0, 0)
    assert_counted_exactly(config_path, good)


def test_an_extra_field_in_a_later_row_is_rejected_when_pandas_reads_the_block_in_one_go(tmp_path, db_url):
    """The fast path dropped the surplus field without a word; the careful path rejected it."""
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    lines = csv_lines(good)
    surplus = "k_bad,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,EXTRA"
    after_empty = "k_bad2,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,,EXTRA"
    _file(tmp_path / "predictions", [HEADER, *lines[:20], surplus, *lines[20:30], after_empty, *lines[30:]])
    assert _counts(config_path) == (40, 2, 0)
    assert _row_rejects(config_path) == {21: f"{WIDER} (line 22 of the file)",
                                         32: "row has 9 fields, the header has 7 (line 33 of the file)"}
    assert_counted_exactly(config_path, good)


ROWS = {  # row -> accepted (True) or the reason it is rejected
    "a1,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0": True,
    "a2,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,": True,  # one empty field more
    "a3,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,,": True,  # two
    'a4,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,""': True,  # a quoted empty one
    "a5,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,EXTRA": WIDER,
    "a6,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,,EXTRA": "row has 9 fields, the header has 7",
    "a7,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0, ": WIDER,  # a space is not empty
    "a8,2024-01-01T05:00:00Z,pos,0.9,0.1,g1": True,  # a short row: its missing fields are empty
    'a9,2024-01-01T05:00:00Z,pos,0.9,0.1,"g1,\nstill g1",1.0': True,  # a field over two lines
    'a10,2024-01-01T05:00:00Z,pos,0.9,0.1,"g""1",1.0,': True,
    'a11,2024-01-01T05:00:00Z,pos,0.9,0.1,12",1.0': True,  # a quote inside a field is a character
}


@pytest.mark.parametrize("first", list(ROWS))
def test_the_one_go_read_and_the_record_by_record_read_agree_on_every_row(tmp_path, first):
    """Each row of ROWS first in the block (where pandas checks no field count) and among the
    others; the same file with a NUL row added goes record by record (no database stores a
    NUL) and must give the same records and rejects."""
    lines = [HEADER, first, *ROWS]
    fast = _file(tmp_path, lines, "fast.csv")
    careful = _file(tmp_path, [*lines, "nul,\x00"], "careful.csv")
    for path in (fast, careful):
        records, found = read_all(path, STRINGS)
        found = found[~found["raw"].str.startswith("nul,")]
        expected = [row for row in [first, *ROWS] if ROWS[row] is True]
        assert records["prediction_id"].tolist() == [row.split(",")[0] for row in expected], path.name
        reasons = {raw: reason.split(" (line")[0] for raw, reason in zip(found["raw"], found["reason"])}
        assert reasons == {row: ROWS[row] for row in [first, *ROWS] if ROWS[row] is not True}, path.name
        assert set(records.loc[records["prediction_id"] == "a9", "group"]) == {"g1,\nstill g1"}
        assert set(records.loc[records["prediction_id"] == "a10", "group"]) == {'g"1'}
        assert set(records.columns) == {*HEADER.split(","), "_row"}


def test_a_field_of_200_kb_is_read_alike_in_one_go_and_record_by_record(tmp_path):
    """Under limits.max_record_bytes; Python's csv module refused more than 128 kB."""
    big = "a1,2024-01-01T05:00:00Z,pos,0.9,0.1,g" + "1" * 200_000 + ",1.0"
    for name, extra in (("fast.csv", []), ("careful.csv", ["nul,\x00"])):
        records, found = read_all(_file(tmp_path, [HEADER, big, *extra], name), STRINGS)
        assert records["group"].str.len().tolist() == [200_001], name
        assert found["raw"].str.startswith("nul,").all(), name


def test_a_stray_quote_does_not_swallow_the_rows_after_it(tmp_path, db_url):
    """A quoted field longer than MAX_RECORD_LINES lines is no field: the line holding its
    quote is rejected, and the next line is a row again (pandas had read 1,998 rows into one
    id of 78,815 characters)."""
    config_path = workspace(tmp_path, db_url)
    good = good_rows(3000)
    lines = csv_lines(good)
    _file(tmp_path / "predictions", [HEADER, '"', *lines[:1998], '"', *lines[1998:]])
    assert _counts(config_path) == (3000, 2, 0)
    assert _row_rejects(config_path) == {1: "unclosed quote (line 2 of the file)",
                                         2000: "unclosed quote (line 2001 of the file)"}
    assert_counted_exactly(config_path, good)


@pytest.mark.parametrize("narrow", [False, True])
def test_a_quoted_record_over_the_record_limit_is_rejected_when_pandas_reads_it_in_one_go(tmp_path, narrow):
    """Each line is under limits.max_record_bytes, the record is not. With `narrow`, the
    overlong field is in a column the model does not use."""
    limits = Limits(max_record_bytes=10_000)
    value = "\n".join(["v" * 900] * 20)
    lines = [HEADER + ",note", "a1,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,ok",
             f'a2,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,"{value}"', "a3,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,ok"]
    keep = {"prediction_id", "timestamp"}.__contains__ if narrow else None
    records, found = read_all(_file(tmp_path, lines), STRINGS, keep=keep, limits=limits)
    # the line of the opening quote is rejected alone; the next lines are rows again (rows of
    # one field, which validation rejects for the fields they miss)
    assert found[["row_number", "reason"]].values.tolist() == [[2, "unclosed quote (line 3 of the file)"]]
    assert found["raw"].iloc[0] == f'a2,2024-01-01T05:00:00Z,pos,0.9,0.1,g1,1.0,"{"v" * 900}'
    assert records["prediction_id"].tolist() == ["a1", *["v" * 900] * 18, "v" * 900 + '"', "a3"]
    assert records["_row"].tolist() == [1, *range(3, 23)]


def test_a_quoted_field_cut_by_the_end_of_a_block_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 100)
    rows = [f'a{i},2024-01-01T05:00:00Z,pos,0.9,0.1,"g{i},\nline {i}",1.0' for i in range(30)]
    records, found = read_all(_file(tmp_path, [HEADER, *rows]), STRINGS)
    assert found.empty
    assert records["group"].tolist() == [f"g{i},\nline {i}" for i in range(30)]
    assert records["_row"].tolist() == list(range(1, 31))


def test_rows_under_a_header_whose_first_column_has_no_name_are_rejected_not_lost(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    (tmp_path / "predictions" / "p.csv").write_text(",id,ts,pred\n0,a,2024-01-01T05:00:00Z,pos\n")
    assert _counts(config_path) == (0, 1, 0)
    assert _row_rejects(config_path) == {1: "missing required field"}


def test_a_line_over_the_record_limit_is_rejected_when_pandas_reads_the_block_in_one_go(tmp_path):
    """A value of 2 MB in a feature column went in; the line is now rejected unread."""
    good = csv_lines(good_rows(4))
    big = "big,2024-01-01T05:00:00Z,pos,0.9,0.1,g1," + "9" * 2_000_000
    records, found = read_all(_file(tmp_path, [HEADER, good[0], big, *good[1:]]), STRINGS)
    assert records["prediction_id"].tolist() == ["g0", "g1", "g2", "g3"]
    assert records["_row"].tolist() == [1, 3, 4, 5]
    assert found[["row_number", "reason"]].values.tolist() == [
        [2, f"line of {len(big):,} bytes (limit 1,000,000: limits.max_record_bytes) (line 3 of the file)"]]
    assert found["raw"].iloc[0] == big[:2000]


_BOMB = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_DATA, ({limit}, {limit}))
from pathlib import Path
from monitor.ingest.readers import read_all
records, found = read_all(Path(sys.argv[1]), ["prediction_id"])
print(json.dumps([records["prediction_id"].tolist(), found["row_number"].tolist(), found["reason"].tolist(),
                  found["raw"].tolist()]))
"""


@pytest.mark.parametrize("suffix", [".csv.gz", ".jsonl.gz"])
def test_a_small_gzip_file_holding_a_line_of_300_mb_is_read_in_bounded_memory(tmp_path, suffix):
    """The reader stops keeping a line once it passes limits.max_record_bytes: reading it
    needs no more memory than a file of short lines (it took 7.6 GB for a line of 1 GiB)."""
    path = tmp_path / f"bomb{suffix}"
    head, tail = ((b"prediction_id,timestamp\n", b"\nlast,2024-01-01T05:00:00Z\n") if suffix == ".csv.gz"
                  else (b'{"prediction_id": "first"}\n', b'\n{"prediction_id": "last"}\n'))
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(head)
        for _ in range(300):
            handle.write(b"A" * (1 << 20))
        handle.write(tail)
    assert path.stat().st_size < 2 << 20
    # the read runs with its data capped at 500 MiB: about 200 MiB more than it needs, 100 MiB
    # less than reading the line whole took (JSON lines; CSV took gigabytes)
    done = subprocess.run([sys.executable, "-c", _BOMB.format(limit=500 << 20), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids, rows, reasons, raws = json.loads(done.stdout)
    reason = "line of 314,572,800 bytes (limit 1,000,000: limits.max_record_bytes)"
    if suffix == ".csv.gz":
        assert (ids, rows, reasons) == (["last"], [1], [f"{reason} (line 2 of the file)"])
    else:
        assert (ids, rows, reasons) == (["first", "last"], [2], [reason])
    assert raws == ["A" * 2000]


@pytest.mark.parametrize("tail", [b"unterminated", b"b" * 3_000])
def test_the_line_blocks_keep_no_line_over_the_limit_and_lose_no_byte_of_the_others(monkeypatch, tail):
    """Whole lines in blocks of at most a block and a line; a longer line is a `LongLine` (its
    size and first bytes); an unterminated tail, long or not, waits while the file may grow."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)
    lines = [b"a" * n for n in (0, 5, 1_000, 1_001, 3, 5_000, 999, 1_002, 0, 2_500)]
    data = b"\n".join(lines) + b"\n" + tail

    def shown(line: bytes) -> bytes:
        return line if len(line) <= 1_000 else f"<{len(line)}:{line[:3].decode()}>".encode()

    for complete_only in (False, True):
        state = ReadState()
        items = list(readers._line_blocks(io.BytesIO(data), complete_only, state, 1_000))
        assert all(len(item) <= 64 + 1_000 for item in items if isinstance(item, bytes))
        text = b"".join(item if isinstance(item, bytes) else f"<{item.size}:{item.head[:3].decode()}>\n".encode()
                        for item in items)
        expected = b"\n".join(shown(line) for line in lines) + b"\n"
        if not complete_only:
            expected += shown(tail) + (b"\n" if len(tail) > 1_000 else b"")
        assert text == expected
        assert state.tail_held is complete_only


def test_a_header_over_the_record_limit_fails_the_file(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id," + "h" * 2_000_000 + "\na,b\n")
    with pytest.raises(readers.UnreadableFile, match="header line of 2,000,003 bytes"):
        read_all(path, STRINGS)


def test_a_csv_file_with_many_unused_columns_keeps_the_rows_of_a_clean_file(tmp_path):
    """Only the kept columns are parsed when they are few; a longer row still goes alone."""
    frame = good_rows(30).assign(**{f"unused{i}": float(i) for i in range(20)})
    lines = frame.to_csv(index=False).splitlines()
    lines.insert(11, lines[10] + ",EXTRA")
    keep = {"prediction_id", "timestamp"}.__contains__
    records, found = read_all(_file(tmp_path, lines), STRINGS, keep=keep)
    assert list(records.columns) == ["prediction_id", "timestamp", "_row"]
    assert records["prediction_id"].tolist() == frame["prediction_id"].tolist()
    assert found["reason"].tolist() == ["row has 28 fields, the header has 27 (line 12 of the file)"]
    clean, _ = read_all(_file(tmp_path, [line + "," for line in frame.to_csv(index=False).splitlines()],
                              "trailing.csv"), STRINGS, keep=keep)
    pd.testing.assert_frame_equal(clean, read_all(_file(tmp_path, frame.to_csv(index=False).splitlines(),
                                                        "plain.csv"), STRINGS, keep=keep)[0])
