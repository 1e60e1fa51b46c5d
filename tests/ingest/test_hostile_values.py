"""Hostile values in files that parse: bytes that are not UTF-8 in a binary Parquet column,
binary columns, nested values (JSON objects and arrays, Parquet structs, lists and maps),
infinite numbers where text is expected, repeated column names. A bad value rejects its row by
itself, naming the field and the row, with the reason the HTTP API gives the same record; the
rest of the file goes in. A file whose columns repeat a name fails, naming the column.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from monitor.config import load_config
from monitor.store.db import make_engine
from monitor.store.models import Label, MonitoredModel, Prediction
from tests.core.handmade import CONFIG
from tests.hostile.workspace import (
    assert_counted_exactly,
    good_rows,
    jsonl_lines,
    rejects,
    stored_counts,
    tick,
    workspace,
)

NESTED = "nested JSON (object or array) where a single value is expected"  # the HTTP API's reason
INFINITE = "infinite number"
NOT_UTF8 = "not valid UTF-8 (byte 0x{byte:02x} at position {position} of the value)"


def _row_rejects(config_path: Path) -> dict[int, tuple[str, str, str]]:
    """Rejected rows: row number -> (field, reason, raw text)."""
    found = rejects(config_path)
    found = found[found["row"].notna()]
    return {int(r.row): (r.field, r.reason, r.raw) for r in found.itertuples()}


def _stored(config_path: Path, *columns) -> list[tuple]:  # type: ignore[no-untyped-def]
    engine = make_engine(load_config(config_path).database_url)
    try:
        with engine.connect() as conn:
            return sorted(tuple(row) for row in conn.execute(select(*columns)))
    finally:
        engine.dispose()


def _binary(values: list[str]) -> pa.Array:
    return pa.array([v.encode() for v in values], pa.binary())


def test_a_binary_parquet_value_that_is_not_utf8_rejects_only_its_row(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(12)
    ids = [v.encode() for v in good["prediction_id"]]
    groups = [v.encode() for v in good["group"]]
    versions = [b"v1"] * 12
    ids[2], groups[5], versions[8] = b"\xffid", b"g\xfe1", b"v\xc3("
    table = pa.Table.from_pandas(good, preserve_index=False)
    table = table.set_column(0, "prediction_id", pa.array(ids, pa.binary()))
    table = table.set_column(table.schema.get_field_index("group"), "group", pa.array(groups, pa.binary()))
    pq.write_table(table.append_column("model_version", pa.array(versions, pa.binary())),
                   tmp_path / "predictions" / "p.parquet")
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected, model.files_failed) == (9, 3, 0)
    found = _row_rejects(config_path)
    assert {row: (field, reason) for row, (field, reason, _) in found.items()} == {
        3: ("prediction_id", NOT_UTF8.format(byte=0xFF, position=1)),
        6: ("group", NOT_UTF8.format(byte=0xFE, position=2)),
        9: ("model_version", NOT_UTF8.format(byte=0xC3, position=2)),
    }
    assert json.loads(found[3][2])["prediction_id"] == "\\xffid"  # the raw row, the bad byte shown
    assert_counted_exactly(config_path, good.drop(index=[2, 5, 8]))
    assert {version for (version,) in _stored(config_path, Prediction.model_version)} == {"v1"}


def test_a_binary_feature_column_is_read_as_text(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(12)
    table = pa.Table.from_pandas(good.drop(columns=["x"]), preserve_index=False)
    pq.write_table(table.append_column("x", _binary(["a" if i % 2 else "b" for i in range(12)])),
                   tmp_path / "predictions" / "text.parquet")
    bad = good_rows(4, prefix="h")
    table = pa.Table.from_pandas(bad.drop(columns=["x"]), preserve_index=False)
    pq.write_table(table.append_column("x", pa.array([b"a", b"\x80", b"b", None], pa.binary())),
                   tmp_path / "predictions" / "bytes.parquet")
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected, model.files_failed) == (15, 1, 0)
    assert {row: (field, reason) for row, (field, reason, _) in _row_rejects(config_path).items()} == {
        2: ("x", NOT_UTF8.format(byte=0x80, position=1))}
    assert_counted_exactly(config_path, pd.concat([good, bad.drop(index=[1])]))


def test_a_parquet_file_that_repeats_a_column_name_fails_naming_it(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(6)
    table = pa.Table.from_arrays(
        [pa.array(good["prediction_id"]), pa.array(good["timestamp"]), pa.array(good["prediction"]),
         pa.array(good["prediction"])], names=["prediction_id", "timestamp", "prediction", "prediction"])
    pq.write_table(table, tmp_path / "predictions" / "twice.parquet")
    pq.write_table(pa.Table.from_pandas(good, preserve_index=False), tmp_path / "predictions" / "fine.parquet")
    model = tick(config_path).models[0]
    assert (model.predictions, model.files_failed) == (6, 1)
    failed = rejects(config_path).dropna(subset=["reason"])
    failed = failed[failed["row"].isna()]
    assert len(failed) == 1 and failed.iloc[0]["source"].endswith("twice.parquet")
    assert "column 'prediction' appears 2 times" in failed.iloc[0]["reason"]


def test_a_nested_json_value_in_a_field_the_model_uses_rejects_its_line(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    lines = jsonl_lines(good)
    time = good["timestamp"][0]
    bad = {
        "prediction_id": {"prediction_id": {"x": 1}, "timestamp": time, "prediction": "pos"},
        "group": {"prediction_id": "b2", "timestamp": time, "prediction": "pos", "group": ["a"]},
        "x": {"prediction_id": "b3", "timestamp": time, "prediction": "pos", "x": {"k": 1}},
        "timestamp": {"prediction_id": "b4", "timestamp": [time], "prediction": "pos"},
        "score_pos": {"prediction_id": "b5", "timestamp": time, "prediction": "pos", "score_pos": [0.5]},
    }
    unused = {"prediction_id": "u1", "timestamp": time, "prediction": "pos", "group": "g1", "meta": {"k": [1]}}
    body = [*lines[:5], *(json.dumps(record) for record in bad.values()), json.dumps(unused), *lines[5:]]
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(body) + "\n")
    labels = [json.dumps({"prediction_id": "g0", "label": ["pos"]}), json.dumps({"prediction_id": "g1", "label": "neg"}),
              json.dumps({"prediction_id": "g2", "label": "pos", "label_timestamp": {"at": 1}})]
    (tmp_path / "labels" / "l.jsonl").write_text("\n".join(labels) + "\n")
    model = tick(config_path).models[0]
    assert (model.predictions, model.files_failed) == (11, 0)
    found = rejects(config_path)
    found = {(Path(r.source).name, int(r.row)): (r.field, r.reason, r.raw) for r in found.itertuples()}
    for row, (field, record) in enumerate(bad.items(), start=6):
        assert found[("p.jsonl", row)] == (field, NESTED, json.dumps(record))  # the line as written
    assert found[("l.jsonl", 1)][:2] == ("label", NESTED)
    assert found[("l.jsonl", 3)][:2] == ("label_timestamp", NESTED)
    assert len(found) == 7
    assert_counted_exactly(config_path, pd.concat([good, pd.DataFrame({"group": ["g1"]})]))
    assert _stored(config_path, Label.prediction_id, Label.label) == [("g1", "neg")]


def test_a_parquet_struct_list_or_map_column_rejects_the_rows_that_hold_a_value(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(9)
    table = pa.Table.from_pandas(good.drop(columns=["group", "x"]), preserve_index=False)
    groups = pa.array([None if i % 3 else {"name": "g1"} for i in range(9)])  # rows 1, 4, 7 hold a struct
    features = pa.array([[("k", 1)] if i == 1 else None for i in range(9)], pa.map_(pa.string(), pa.int64()))
    table = table.append_column("group", groups).append_column("x", features)
    # columns the model does not use hold what they like, even the first (read to count rows)
    table = table.add_column(0, "meta", pa.array([{"k": [i]} for i in range(9)]))
    pq.write_table(table.append_column("tags", pa.array([[i] for i in range(9)])), tmp_path / "predictions" / "p.parquet")
    model = tick(config_path).models[0]
    assert (model.predictions, model.rejected, model.files_failed) == (5, 4, 0)
    found = {row: (field, reason) for row, (field, reason, _) in _row_rejects(config_path).items()}
    struct = "nested value (a Parquet struct) where a single value is expected"
    assert found == {1: ("group", struct), 4: ("group", struct), 7: ("group", struct),
                     2: ("x", "nested value (a Parquet map) where a single value is expected")}
    assert stored_counts(load_config(config_path)).to_dict() == {"(missing)": 5}


def test_an_infinite_number_is_no_id_class_or_segment_value(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(6)
    time = good["timestamp"][0]
    lines = [*jsonl_lines(good), f'{{"prediction_id": 1e400, "timestamp": "{time}", "prediction": "pos"}}',
             f'{{"prediction_id": "i2", "timestamp": "{time}", "prediction": "pos", "group": -Infinity}}',
             f'{{"prediction_id": "i3", "timestamp": "{time}", "prediction": "pos", "group": NaN}}']
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.table({"prediction_id": [7.0, float("inf")], "timestamp": [time] * 2, "prediction": ["neg"] * 2})
    pq.write_table(table, tmp_path / "predictions" / "q.parquet")
    (tmp_path / "labels" / "l.jsonl").write_text('{"prediction_id": "g1", "label": 1e999}\n')
    model = tick(config_path).models[0]
    assert (model.predictions, model.files_failed) == (8, 0)  # NaN is a missing group, as null
    found = rejects(config_path)
    found = {(Path(r.source).name, int(r.row)): (r.field, r.reason) for r in found.itertuples()}
    assert set(found) == {("p.jsonl", 7), ("p.jsonl", 8), ("q.parquet", 2), ("l.jsonl", 1)}
    assert [found[k][0] for k in sorted(found)] == ["label", "prediction_id", "group", "prediction_id"]
    assert all(reason.startswith(INFINITE) for _, reason in found.values())
    assert ("7",) in _stored(config_path, Prediction.prediction_id)


def test_a_json_line_that_is_no_object_says_what_it_is_in_json_words(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    lines = ["null", "[1, 2]", '"text"', "7.5", "true", *jsonl_lines(good_rows(2))]
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(lines) + "\n")
    assert tick(config_path).models[0].predictions == 2
    reasons = {row: reason for row, (_, reason, _) in _row_rejects(config_path).items()}
    assert reasons == {1: "record is null, not a JSON object", 2: "record is an array, not a JSON object",
                       3: "record is a string, not a JSON object", 4: "record is a number, not a JSON object",
                       5: "record is a boolean, not a JSON object"}  # as the HTTP API says it


def test_a_nested_reference_value_rejects_its_row_only_in_a_column_the_model_uses(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    config_path.write_text(CONFIG.format(db_url=sqlite_url).replace(
        'bucket = "1h"', 'bucket = "1h"\nreference = "reference.parquet"'))
    reference = good_rows(20, prefix="r").drop(columns=["x"]).assign(label=lambda f: f["prediction"])
    table = pa.Table.from_pandas(reference, preserve_index=False)
    table = table.append_column("x", pa.array([[float(i)] if i < 3 else None for i in range(20)]))  # used
    table = table.append_column("notes", pa.array([{"by": "etl", "tags": ["a"]}] * 20))  # not used
    pq.write_table(table, tmp_path / "reference.parquet")
    model = tick(config_path).models[0]
    assert not model.errors
    assert _stored(config_path, MonitoredModel.reference_rows) == [(17,)]


def test_a_json_line_rejected_for_a_missing_field_shows_the_line_as_written(tmp_path, sqlite_url):
    config_path = workspace(tmp_path, sqlite_url)
    misnamed = json.dumps({"id": "w1", "time": "2024-01-01T05:00:00Z", "pred": "pos", "group": "g1"})
    unknown = json.dumps({"prediction_id": "w2", "timestamp": "2024-01-01T05:00:00Z", "prediction": "maybe",
                          "extra": "kept in the raw text"})
    lines = [*jsonl_lines(good_rows(3)), misnamed, unknown]
    (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(lines) + "\n")
    assert tick(config_path).models[0].predictions == 3
    found = _row_rejects(config_path)
    assert found[4] == ("prediction_id", "missing required field", misnamed)
    assert found[5][0] == "prediction" and found[5][2] == unknown


@pytest.mark.parametrize("body", ['{"prediction_id": 1e400}', '{"prediction_id": -Infinity}'])
def test_the_http_api_rejects_an_infinite_id_as_files_do(body):
    """A POST's record goes through `check_record`: an infinite number where exact text is
    expected is rejected with the files' reason, not stored as the text '1e400'."""
    from monitor.ingest.chunks import NOT_FINITE_REASON
    from monitor.ingest.records import check_record, json_decoder, loads

    record = loads(json_decoder(1000), body)
    assert check_record(1, record, {"prediction_id"}, lambda column: True, 1000)[1:3] == (
        "prediction_id", NOT_FINITE_REASON)
    kept = check_record(1, loads(json_decoder(1000), '{"prediction_id": 1.5}'), {"prediction_id"},
                        lambda column: True, 1000)
    assert kept == {"prediction_id": "1.5"}
