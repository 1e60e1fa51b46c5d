"""The quick check of small JSON batches (`monitor.ingest.quick`) says yes only when the full
validator accepts every record, and what it queues validates (as the inbox's drain validates
it) to exactly the rows the full path gives; on generated hostile records."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ModelConfig
from monitor.context import ModelContext
from monitor.ingest.inbox import frame_records
from monitor.ingest.quick import plain_records
from monitor.ingest.records import json_decoder, loads, records_frame
from monitor.ingest.validate import Validated, validate_labels, validate_predictions

CONTEXT = ModelContext(
    config=ModelConfig(name="m", classes=["neg", "pos"], segments=["group"], features=["x"],
                       limits={"max_id_length": 12, "max_value_length": 8}),
    model_id=1, classes=["neg", "pos"], minority_classes=["pos"], segments=["group"], features=["x"],
)
NOW = int(time.time())
TEXTS = ["a1", " a2 ", "", "  ", "pos", "neg", " pos", "other", "x" * 20, "\u00e9t\u00e9", "\u2003pos",
         "2024-01-01T01:00:00Z", " 2024-03-01 12:00:00+02:00", "2024-02-30T00:00:00", "2024-01-01T10:00",
         "2024-06-01T00:00:00.123456Z", "2024-06-01T00:00:00-05:30", "0099-01-01T00:00:00", "2999-01-01T00:00:00",
         "+2024-01-01T00:00:00", "1704067200", " 1704067200.5 ", "1704067200000", "1.7e9", "12:30", "nan", "inf",
         "-1", "0.5", "1.5", "abc", "2024-01-01", "1e400", "2024-01-01T24:00:00"]
NUMBERS = [0.0, 0.5, 1.0, 1.5, -0.1, 1704067200, 1704067200.25, 1704067200000, NOW + 10 * 86400, -3, 7, 2**70]
RAW_NUMBERS = ["NaN", "Infinity", "1e400", "1.0", "0.25", "1704067200.0", "1704067200123"]
VALUES = st.one_of(st.sampled_from(TEXTS), st.none(), st.booleans(), st.sampled_from(NUMBERS),
                   st.sampled_from(RAW_NUMBERS).map(lambda text: ("raw", text)))
PREDICTION_FIELDS = ["prediction_id", "timestamp", "prediction", "model_version", "score_pos", "score_neg",
                     "group", "x", "ignored"]
LABEL_FIELDS = ["prediction_id", "label", "label_timestamp", "ignored"]
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _plain_prediction(i: int) -> dict:
    return {"prediction_id": f"p{i}", "timestamp": 1704067200 + i, "prediction": "pos", "score_pos": 0.75,
            "score_neg": 0.25, "group": "a", "x": 1.5}


def _plain_label(i: int) -> dict:
    return {"prediction_id": f"p{i}", "label": "neg", "label_timestamp": 1704067200 + i}


@st.composite
def bodies(draw: st.DrawFn, fields: list[str]) -> str:
    """A JSON array of plainly valid records, one or two of which have a field replaced or
    dropped (so that the one odd value decides)."""
    n = draw(st.integers(min_value=1, max_value=4))
    records: list[dict] = [_plain_prediction(i) if "prediction" in fields else _plain_label(i) for i in range(n)]
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        record = records[draw(st.integers(min_value=0, max_value=n - 1))]
        field = draw(st.sampled_from(fields))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            record.pop(field, None)
        else:
            record[field] = draw(VALUES)
    return _body(records)  # raw number texts are written into the JSON as they are


def _parsed(body: str) -> list:
    return list(enumerate(loads(json_decoder(1000), body), start=1))


def _drained(queued: list[tuple[int, dict]]) -> pd.DataFrame:
    """The frame the inbox's drain builds from the queued JSON texts."""
    frame = pd.DataFrame.from_records([json.loads(json.dumps(record, ensure_ascii=False)) for _, record in queued])
    frame["_row"] = np.asarray([number for number, _ in queued], dtype=np.int64)
    return frame


def _number(value: object) -> object:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _canonical(rows: pd.DataFrame) -> list[dict]:
    """Rows as comparable dicts: NaN and missing alike, numbers as floats."""
    out = []
    for record in rows.drop(columns=["_row"]).to_dict("records"):
        out.append({k: (None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else _number(v))
                    for k, v in record.items()})
    return out


def _queued(records: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """Queued records as the drain reads them back (JSON text), numbers as floats."""
    return [(n, {k: _number(v) for k, v in json.loads(json.dumps(r, ensure_ascii=False)).items()}) for n, r in records]


def _both_paths(body: str, kind: str) -> tuple[list | None, pd.DataFrame, Validated]:
    """(what the quick check queues or None, the full path's frame, its validation); when the
    quick check says yes, the full path must have refused and rejected nothing."""
    records = _parsed(body)
    quick = plain_records(records, CONTEXT, kind, received=NOW, max_fields=1000)
    frame, refused = records_frame(records, CONTEXT, kind)
    full = validate_predictions(frame, CONTEXT) if kind == "predictions" else validate_labels(frame, CONTEXT, NOW)
    if quick is not None:
        assert not refused and full.rejects.empty, (body, full.rejects.to_dict("records"))
    return quick, frame, full


@SETTINGS
@given(bodies(PREDICTION_FIELDS))
def test_quick_predictions_only_when_the_full_validator_accepts_all(body: str) -> None:
    quick, frame, full = _both_paths(body, "predictions")
    if quick is None:
        return
    assert _queued(quick) == _queued(frame_records(frame))  # what the full path queues
    again = validate_predictions(_drained(quick), CONTEXT)
    assert again.rejects.empty and len(again.rows) == len(full.rows)


@SETTINGS
@given(bodies(LABEL_FIELDS))
def test_quick_labels_queue_the_canonical_rows(body: str) -> None:
    quick, _, full = _both_paths(body, "labels")
    if quick is None:
        return
    good = full.rows.rename(columns={"label_ts": "label_timestamp"})
    assert _queued(quick) == _queued(frame_records(good))
    again = validate_labels(_drained(quick), CONTEXT, 0)
    assert again.rejects.empty and _canonical(again.rows) == _canonical(full.rows)


def test_usual_bodies_take_the_quick_path() -> None:
    """Epoch seconds, epoch milliseconds, ISO texts with and without a zone, integer ids: all quick."""
    body = json.dumps([_plain_prediction(0),
                       {**_plain_prediction(1), "timestamp": 1704067200123, "prediction_id": 17},
                       {**_plain_prediction(2), "timestamp": "2024-01-01T00:00:00Z", "model_version": "v2"},
                       {**_plain_prediction(3), "timestamp": "2024-01-01 00:00:00.5", "group": None}])
    quick = plain_records(_parsed(body), CONTEXT, "predictions", received=NOW, max_fields=1000)
    assert quick is not None and [n for n, _ in quick] == [1, 2, 3, 4]
    assert quick[1][1]["prediction_id"] == "17" and "group" not in quick[3][1]
    labels = json.dumps([{"prediction_id": "p1", "label": " pos "},
                         {"prediction_id": "p2", "label": "neg", "label_timestamp": "2024-01-02T00:00:00+01:00"}])
    quick = plain_records(_parsed(labels), CONTEXT, "labels", received=NOW, max_fields=1000)
    assert quick == [(1, {"prediction_id": "p1", "label": "pos", "label_timestamp": NOW}),
                     (2, {"prediction_id": "p2", "label": "neg", "label_timestamp": 1704150000})]


def test_one_doubtful_record_sends_the_whole_body_to_the_full_validator() -> None:
    for bad in ({"prediction": "maybe"}, {"score_pos": 1.5}, {"score_pos": "0.5"}, {"timestamp": "yesterday"},
                {"timestamp": True}, {"prediction_id": "x" * 13}, {"timestamp": 4102444800}, {"group": "y" * 9}):
        body = json.dumps([_plain_prediction(0), {**_plain_prediction(1), **bad}])
        assert plain_records(_parsed(body), CONTEXT, "predictions", received=NOW, max_fields=1000) is None, bad


def _body(records: list[dict]) -> str:
    parts = []
    for record in records:
        items = [f"{json.dumps(k)}: {v[1] if isinstance(v, tuple) else json.dumps(v)}" for k, v in record.items()]
        parts.append("{" + ", ".join(items) + "}")
    return "[" + ", ".join(parts) + "]"


def test_every_single_odd_value_is_judged_as_the_full_validator_judges_it() -> None:
    """Exhaustively: each field of a plain record replaced by each value of the pools (or left
    out): the quick check never accepts what the full validator rejects, and accepts the
    plain values (at least half of the cases, so that the comparison is not vacuous)."""
    values = [*TEXTS, None, True, False, *NUMBERS, *(("raw", text) for text in RAW_NUMBERS)]
    quick_taken = cases = 0
    for kind, fields, make in (("predictions", PREDICTION_FIELDS, _plain_prediction), ("labels", LABEL_FIELDS, _plain_label)):
        for field in fields:
            for value in [*values, "<absent>"]:
                record = make(1)
                if value == "<absent>":
                    record.pop(field, None)
                else:
                    record[field] = value
                body = _body([make(0), record])
                records = _parsed(body)
                quick = plain_records(records, CONTEXT, kind, received=NOW, max_fields=1000)
                frame, refused = records_frame(records, CONTEXT, kind)
                full = validate_predictions(frame, CONTEXT) if kind == "predictions" else validate_labels(frame, CONTEXT, NOW)
                cases += 1
                if quick is None:
                    continue
                quick_taken += 1
                assert not refused and full.rejects.empty, (body, full.rejects.to_dict("records"))
                good = full.rows.rename(columns={"label_ts": "label_timestamp"}) if kind == "labels" else frame
                assert _queued(quick) == _queued(frame_records(good)), body
    assert quick_taken >= cases // 4, (quick_taken, cases)
