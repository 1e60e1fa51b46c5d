"""Lines that end with a lone CR (Excel's "CSV (Macintosh)", old Mac tools).

Such a file has no LF at all, so it was one unterminated line: held back as "waiting" for
ever, 0 rows read, 0 rejected, no error. Its CRs are now read as line ends, in CSV and JSON
lines, plain and gzip; files with LF or CRLF ends are read as before.
"""

from __future__ import annotations

import gzip

import pandas as pd

from monitor.ingest.chunks import ReadState
from monitor.ingest.readers import read_all
from tests.hostile.workspace import (
    HEADER,
    STRINGS,
    assert_counted_exactly,
    csv_lines,
    good_rows,
    jsonl_lines,
    rejects,
    tick,
    workspace,
)


def _cr(lines: list[str]) -> bytes:
    return "\r".join(lines).encode() + b"\r"


def test_a_csv_file_with_cr_line_ends_is_read_row_by_row(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    (tmp_path / "predictions" / "mac.csv").write_bytes(_cr([HEADER, *csv_lines(good)]))
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected, model.files_failed, model.waiting) == (40, 0, 0, 0)
    assert_counted_exactly(config_path, good)


def test_gzip_and_json_lines_with_cr_line_ends_are_read_too(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    first, second = good_rows(30, "a"), good_rows(20, "b")
    (tmp_path / "predictions" / "a.csv.gz").write_bytes(gzip.compress(_cr([HEADER, *csv_lines(first)])))
    (tmp_path / "predictions" / "b.jsonl").write_bytes(_cr(jsonl_lines(second)))
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected, model.waiting) == (50, 0, 0)
    assert_counted_exactly(config_path, pd.concat([first, second], ignore_index=True))


def test_a_bad_row_of_a_cr_file_is_rejected_alone_with_its_row_and_line(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    good = good_rows(40)
    lines = csv_lines(good)
    bad = "k_bad,not a time,pos,0.9,0.1,g1,1.0"
    (tmp_path / "predictions" / "mac.csv").write_bytes(_cr([HEADER, *lines[:10], bad, *lines[10:]]))
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected) == (40, 1)
    found = rejects(config_path)
    assert list(found["row"]) == [11]
    assert "not a time" in found["raw"].iloc[0] and "timestamp" in found["reason"].iloc[0]


def test_a_growing_cr_file_holds_back_only_its_unterminated_last_line(tmp_path):
    good = good_rows(5)
    path = tmp_path / "growing.csv"
    path.write_bytes(_cr([HEADER, *csv_lines(good)]) + b"h9,2024-01-01T0")
    state = ReadState()
    records, bad = read_all(path, STRINGS, complete_only=True, state=state)
    assert list(records["prediction_id"]) == list(good["prediction_id"])
    assert state.tail_held and bad.empty


def test_files_with_lf_or_crlf_ends_keep_a_cr_inside_a_quoted_field(tmp_path):
    """Only a file without any LF is read as CR-ended: elsewhere a CR is data."""
    good = good_rows(3)
    lines = csv_lines(good)
    quoted = 'q1,2024-01-01T00:00:00Z,pos,0.9,0.1,"g\r1",1.0'
    for name, end in (("lf.csv", "\n"), ("crlf.csv", "\r\n")):
        path = tmp_path / name
        path.write_bytes(end.join([HEADER, quoted, *lines]).encode() + end.encode())
        records, bad = read_all(path, STRINGS)
        assert bad.empty, name
        assert list(records["prediction_id"]) == ["q1", *good["prediction_id"]], name
        assert records["group"].iloc[0] == "g\r1", name

