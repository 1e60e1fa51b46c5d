"""Hostile timestamps: a row of the wrong era is rejected by itself; the model stays readable.

Before, one epoch-milliseconds value or a year 1900/2100 went in and made every later read
allocate per-second arrays across centuries; a year >= 2262 discarded its whole file.
"""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.ingest.validate import MILLISECONDS_FROM
from monitor.timeutil import parse_time
from tests.hostile.workspace import (
    START,
    assert_counted_exactly,
    assert_reads_work,
    csv_lines,
    good_rows,
    jsonl_lines,
    rejects,
    tick,
    workspace,
)

HOSTILE_TIMES = {
    "1900-01-01T00:00:00Z": "outside",
    "2100-01-01T00:00:00Z": "outside",
    "9999-12-31T23:59:59Z": "outside",
    "2300-01-01": "outside",
    "0001-01-01": "outside",
    "+275760-09-13": "outside",
    "1e300": "outside",
    "-5": "outside",
    "inf": "outside",
    "99999999999999999999999": "outside",
    "2024-13-45T00:00:00Z": "unparsable timestamp",
    "yesterday": "unparsable timestamp",
}


def _with_times(good: pd.DataFrame, times: list[str], prefix: str) -> pd.DataFrame:
    bad = good.head(len(times)).copy()
    bad["prediction_id"] = [f"{prefix}{i}" for i in range(len(times))]
    bad["timestamp"] = times
    return bad


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_it_rejects_each_implausible_timestamp_alone_and_counts_the_rest(tmp_path, db_url, fmt):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(40)
    bad = _with_times(good, list(HOSTILE_TIMES), "bad")
    rows = pd.concat([good.iloc[:20], bad, good.iloc[20:]], ignore_index=True)
    if fmt == "csv":
        (tmp_path / "predictions" / "p.csv").write_text("\n".join([",".join(rows.columns), *csv_lines(rows)]) + "\n")
    else:
        (tmp_path / "predictions" / "p.jsonl").write_text("\n".join(jsonl_lines(rows)) + "\n")
    summary = tick(config_path)
    assert summary.models[0].predictions == 40
    assert summary.models[0].rejected == len(HOSTILE_TIMES)
    found = rejects(config_path)
    found = found[found["row"].notna()]
    assert sorted(found["row"].astype(int)) == list(range(21, 21 + len(HOSTILE_TIMES)))
    for row, (text, reason) in zip(range(21, 21 + len(HOSTILE_TIMES)), HOSTILE_TIMES.items()):
        got = found[found["row"].astype(int) == row].iloc[0]
        assert got["field"] == "timestamp", text
        assert reason in got["reason"], (text, got["reason"])
    assert_counted_exactly(config_path, good)
    assert_reads_work(config_path)


def test_epoch_milliseconds_are_recognised_by_their_size(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    as_seconds = good["timestamp"].map(parse_time)
    good["timestamp"] = [str(s * 1000) if i % 2 else str(s) for i, s in enumerate(as_seconds)]
    assert all(int(t) >= MILLISECONDS_FROM for t in good["timestamp"][1::2])
    (tmp_path / "predictions" / "p.csv").write_text(good.to_csv(index=False))
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected) == (10, 0)
    assert_counted_exactly(config_path, good)


def test_milliseconds_are_out_of_range_when_epoch_units_are_seconds(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url, extra='[models.limits]\nepoch_units = "seconds"')
    good = good_rows(4)
    good.loc[0, "timestamp"] = str(START * 1000)
    (tmp_path / "predictions" / "p.csv").write_text(good.to_csv(index=False))
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected) == (3, 1)
    assert "outside" in rejects(config_path)["reason"].iloc[0]


def test_a_far_future_row_is_rejected_not_left_waiting_under_as_of(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    rows = pd.concat([good, _with_times(good, ["2100-01-01T00:00:00Z"], "future")], ignore_index=True)
    (tmp_path / "predictions" / "p.csv").write_text(rows.to_csv(index=False))
    summary = tick(config_path, as_of=START + 5 * 3600)
    assert summary.models[0].rejected == 1
    assert summary.models[0].waiting == 4  # the good rows after the clock wait, as before


def test_the_plausible_window_is_configurable(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url, extra='[models.limits]\nearliest_timestamp = "1990-01-01"')
    good = good_rows(5)
    good.loc[0, "timestamp"] = "1995-06-01T00:00:00Z"
    (tmp_path / "predictions" / "p.csv").write_text(good.to_csv(index=False))
    assert tick(config_path).models[0].predictions == 5


def test_a_label_timestamp_out_of_range_rejects_that_label_only(tmp_path, db_url):
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    (tmp_path / "predictions" / "p.csv").write_text(good.to_csv(index=False))
    labels = pd.DataFrame({"prediction_id": good["prediction_id"], "label": good["prediction"],
                           "label_timestamp": ["2024-01-05T00:00:00Z"] * 9 + ["2300-01-01"]})
    (tmp_path / "labels" / "l.csv").write_text(labels.to_csv(index=False))
    summary = tick(config_path)
    assert (summary.models[0].labels, summary.models[0].rejected) == (9, 1)
    found = rejects(config_path)
    assert found.iloc[0]["field"] == "label_timestamp" and "outside" in found.iloc[0]["reason"]


def test_parquet_datetimes_of_any_era_are_judged_not_overflowed(tmp_path, db_url):
    """A datetime64[us] column holds the year 2300 (past pandas' nanosecond range): the row is
    rejected by itself; int64 ids above 2**53 stay exact."""
    config_path = workspace(tmp_path, db_url)
    good = good_rows(10)
    frame = good.assign(timestamp=pd.to_datetime(good["timestamp"], utc=True).astype("datetime64[us, UTC]"))
    bad = frame.head(2).assign(prediction_id=["p2300", "p1900"],
                               timestamp=pd.Series(pd.to_datetime(["2300-01-01", "1900-01-01"]).astype(
                                   "datetime64[us]")).dt.tz_localize("UTC").to_numpy())
    rows = pd.concat([frame, bad], ignore_index=True)
    rows.to_parquet(tmp_path / "predictions" / "p.parquet")
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].rejected, summary.models[0].files_failed) == (10, 2, 0)
    assert all("outside" in reason for reason in rejects(config_path)["reason"])
    assert_counted_exactly(config_path, good)


def test_reads_ignore_implausible_buckets_a_database_stored_before_the_check(tmp_path, db_url):
    """A database filled before the plausible-time window existed may hold counts of the year
    55994 (epoch milliseconds read as seconds) or 1900: default reads stay bounded."""
    from sqlalchemy import insert, select

    from monitor.config import load_config
    from monitor.store.db import make_engine
    from monitor.store.models import PredictionCount

    config_path = workspace(tmp_path, db_url)
    good = good_rows(20)
    good.to_csv(tmp_path / "predictions" / "p.csv", index=False)
    tick(config_path)
    engine = make_engine(load_config(config_path).database_url)
    with engine.begin() as conn:
        model_id, slice_id = conn.execute(select(PredictionCount.model_id, PredictionCount.slice_id)).first()
        for table in (PredictionCount.__table__, PredictionCount.__table__.metadata.tables["prediction_counts_daily"]):
            conn.execute(insert(table), [
                {"model_id": model_id, "bucket_start": bucket, "slice_id": slice_id, "pred_class": "pos", "n": 1}
                for bucket in (1_704_880_800_000 - 1_704_880_800_000 % 86400, -2_208_988_800)])
    engine.dispose()
    assert_counted_exactly(config_path, good)
    assert_reads_work(config_path)
