"""Row validation's plain-Python fast paths (text columns of ASCII str and missing values,
timestamps as such text) give exactly what its general pandas path gives: the same good rows
(values, dtypes, index) and the same rejects (row, field, reason, raw), on mixed hostile values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ModelConfig
from monitor.context import ModelContext
from monitor.ingest import validate

CONTEXT = ModelContext(
    config=ModelConfig(name="m", classes=["neg", "pos"], segments=["group"], features=["x"],
                       limits={"max_id_length": 12, "max_value_length": 8}),
    model_id=1, classes=["neg", "pos"], minority_classes=["pos"], segments=["group"], features=["x"],
)
TEXTS = ["a1", " a2 ", "", "  ", "pos", "neg", " pos", "other", "x" * 20, "a\x00b", "\u00e9t\u00e9", "\u2003pos",
         "2024-01-01T01:00:00Z", " 2024-03-01 12:00:00+02:00", "2024-02-30T00:00:00", "0099-01-01T00:00:00",
         "99999-01-01T00:00:00", "+2024-01-01T00:00:00", "-5-01-01", "1704067200", "1704067200000", "1.7e9",
         "12:30", "nan", "inf", "-1", "0.5", "1.5", "abc", "2024-01-01", "1e400",
         # years near and beyond 1700 and 2200, in the text or in UTC
         "1699-12-31T23:00:00-05:00", "1700-01-01T03:00:00+05:00", "1650-06-01T00:00:00Z", "1500-13-45",
         "2200-12-31T23:00:00-05:00", "2201-01-01T00:00:00Z", "2201-01-01T02:00:00+05:00", "2199-06-01T00:00:00"]
VALUES = st.one_of(st.sampled_from(TEXTS), st.none(), st.just(float("nan")), st.sampled_from([0.5, 1704067200, -3]))
COLUMNS = ["prediction_id", "timestamp", "prediction", "model_version", "score_pos", "group", "x",
           "label", "label_timestamp"]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=12))
    present = draw(st.lists(st.sampled_from(COLUMNS), unique=True, min_size=1))
    data: dict[str, list] = {}
    for column in present:
        kind = draw(st.sampled_from(["mixed", "text", "number"]))
        if kind == "number":
            data[column] = draw(st.lists(st.sampled_from([0.25, 1704067200.0, np.nan, 2.0]), min_size=n, max_size=n))
        else:
            pool = VALUES if kind == "mixed" else st.one_of(st.sampled_from(TEXTS), st.none())
            data[column] = draw(st.lists(pool, min_size=n, max_size=n))
    frame = pd.DataFrame({c: pd.Series(v, dtype=object if len(v) and any(isinstance(x, str) for x in v) else None)
                          for c, v in data.items()}, index=pd.RangeIndex(n))
    frame["_row"] = np.arange(1, n + 1, dtype=np.int64)
    return frame


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "_plain_text", lambda values: False)
    monkeypatch.setattr(validate, "_no_nul", lambda array: False)


def _same(fast: validate.Validated, general: validate.Validated) -> None:
    pd.testing.assert_frame_equal(fast.rows, general.rows)
    pd.testing.assert_frame_equal(fast.rejects.reset_index(drop=True), general.rejects.reset_index(drop=True))


@SETTINGS
@given(frame=frames())
def test_predictions_fast_path_equals_general_path(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = validate.validate_predictions(frame, CONTEXT)
    with monkeypatch.context() as patch:
        _general(patch)
        general = validate.validate_predictions(frame, CONTEXT)
    _same(fast, general)


@SETTINGS
@given(frame=frames())
def test_labels_fast_path_equals_general_path(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = validate.validate_labels(frame, CONTEXT, 1_704_067_200)
    with monkeypatch.context() as patch:
        _general(patch)
        general = validate.validate_labels(frame, CONTEXT, 1_704_067_200)
    _same(fast, general)


TEXT_VALUES = st.one_of(st.none(), st.sampled_from(["", "pos", "neg", "x" * 9, "c7", " pos"]), st.text(max_size=10))


@SETTINGS
@given(values=st.lists(TEXT_VALUES, max_size=30), many=st.booleans())
def test_vector_checks_of_text_equal_their_plain_definitions(values: list, many: bool) -> None:
    """`_blank`, `_unknown` (few classes and more than 16) and `_reject_long` on `_text`'s
    str and None values, against one plain Python expression each."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    assert validate._blank(array).tolist() == [v is None or v == "" for v in values]
    classes = ["neg", "pos", *(f"c{i}" for i in range(20 if many else 0))]
    assert validate._unknown(array, classes).tolist() == [v is not None and v not in classes for v in values]
    frame = pd.DataFrame({"v": pd.Series(values, dtype=object), "_row": np.arange(1, len(values) + 1)})
    rejector = validate._Rejector(frame)
    validate._reject_long(rejector, array, "v", 8, "class")
    assert sorted(rejector.where().tolist()) == [i for i, v in enumerate(values) if v is not None and len(v) > 8]
