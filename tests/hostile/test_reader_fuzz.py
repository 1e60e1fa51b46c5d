"""Fuzz the file readers and row validation: whatever bytes a file holds, reading it either
fails the file as a whole with `UnreadableFile` or yields rows and rejects that account for
every record, and validation never raises. Bounded: MONITOR_FUZZ_EXAMPLES examples per test
(default 100), no deadline per example.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ModelConfig
from monitor.context import ModelContext
from monitor.ingest.ledger import input_columns
from monitor.ingest.readers import UnreadableFile, read_chunks
from monitor.ingest.validate import validate_labels, validate_predictions

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HEADER = b"prediction_id,timestamp,prediction,score_pos,score_neg,group,x"
GOOD = b"a1,2024-01-01T01:00:00Z,pos,0.9,0.1,g1,1.5"
GOOD_JSON = b'{"prediction_id": "a1", "timestamp": "2024-01-01T01:00:00Z", "prediction": "pos", "group": "g1"}'

CONTEXT = ModelContext(
    config=ModelConfig(name="m", classes=["neg", "pos"], segments=["group"], features=["x"],
                       limits={"max_record_bytes": 10_000, "max_fields": 50}),
    model_id=1, classes=["neg", "pos"], minority_classes=["pos"], segments=["group"], features=["x"],
)

fragments = st.sampled_from([b",", b'"', b'""', b"\n", b"\r\n", b"\x00", b"\xff", b"\xef\xbb\xbf", b"{", b"}",
                             b"[", b"]", b":", b"9" * 25, b"-1e308", b"NaN", b"2024-01-01T01:00:00Z",
                             b"9999-12-31", b"\\u0000", b"\\ud800", b"pos", b"neg", b"\t", b" "])
noise = st.lists(st.one_of(fragments, st.binary(max_size=12)), max_size=40).map(b"".join)


def _lines(good: bytes) -> st.SearchStrategy[bytes]:
    line = st.one_of(st.just(good), noise)
    return st.lists(line, min_size=0, max_size=30).map(b"\n".join)


def _read_everything(path: Path, kind: str) -> tuple[int, int]:
    strings, keep = input_columns(CONTEXT, kind)
    rows = rejected = 0
    seen: set[int] = set()
    try:
        for chunk in read_chunks(path, strings, keep=keep, limits=CONTEXT.config.limits):
            numbers = [*chunk.frame["_row"].tolist(), *chunk.rejects["row_number"].tolist()]
            assert not seen.intersection(numbers) and len(set(numbers)) == len(numbers)
            seen.update(numbers)
            if kind == "predictions":
                validated = validate_predictions(chunk.frame, CONTEXT)
            else:
                validated = validate_labels(chunk.frame, CONTEXT, default_ts=1_704_067_200)
            assert len(validated.rows) + len(validated.rejects) == len(chunk.frame)
            rows += len(validated.rows)
            rejected += len(validated.rejects) + len(chunk.rejects)
    except UnreadableFile:
        pass  # a file that cannot be read at all is failed as a whole: allowed
    return rows, rejected


@FUZZ
@given(body=_lines(GOOD), bom=st.booleans(), newline=st.booleans())
def test_any_csv_bytes_are_read_or_failed_never_crash(tmp_path_factory, body, bom, newline):
    path = tmp_path_factory.mktemp("fuzz") / "p.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + HEADER + b"\n" + body + (b"\n" if newline else b""))
    _read_everything(path, "predictions")


@FUZZ
@given(body=_lines(GOOD_JSON))
def test_any_json_lines_bytes_are_read_or_failed_never_crash(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("fuzz") / "p.jsonl"
    path.write_bytes(body)
    _read_everything(path, "predictions")
    labels = tmp_path_factory.mktemp("fuzz") / "l.jsonl"
    labels.write_bytes(body.replace(b'"prediction"', b'"label"'))
    _read_everything(labels, "labels")


@FUZZ
@given(records=st.lists(st.dictionaries(
    st.sampled_from(["prediction_id", "timestamp", "prediction", "score_pos", "group", "x", "other"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
              st.lists(st.integers(), max_size=3)), max_size=7), max_size=20))
def test_any_json_values_validate_without_raising(tmp_path_factory, records):
    import json

    path = tmp_path_factory.mktemp("fuzz") / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    rows, rejected = _read_everything(path, "predictions")
    assert rows + rejected == len(records)


def test_the_fuzz_inputs_include_good_rows(tmp_path):
    """The strategies can produce a readable row, so the fuzz tests exercise the happy path."""
    path = tmp_path / "p.csv"
    path.write_bytes(HEADER + b"\n" + GOOD + b"\n")
    assert _read_everything(path, "predictions") == (1, 0)
    frame = next(read_chunks(path, ["prediction_id"])).frame
    assert isinstance(frame, pd.DataFrame) and frame["prediction_id"].tolist() == ["a1"]
