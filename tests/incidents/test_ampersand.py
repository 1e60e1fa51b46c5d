"""A segment value holding `&` (a department `R&D`, a brand `H&M`): `&` also joins the names and
values of an intersection (`region&sex` = `south&F`), and incident grouping split every series
on it. A single value `R&D` then failed grouping on every tick ("! incidents: ValueError"), so
no incident ever opened for the model. Now a single attribute's value is taken whole, and an
intersection whose values hold `&` is kept as one series instead of being split wrongly."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config
from monitor.read import incidents as incident_reads
from monitor.simulate import Fault, simulate, write_config, write_logs
from monitor.store.db import make_engine
from monitor.store.slices import slice_pairs
from monitor.tick import run_tick
from tests.incidents.simworld import DAY, LABEL_DAYS, break_pair, scenario

FAULT_DAY = 14
NAMES = {"south": "R&D", "north": "a&b&c"}  # the faulty value and one with two separators


def _tick(directory: Path, db_url: str, *, pair: bool):  # type: ignore[no-untyped-def]
    """The simulated logs with region values renamed to hold `&`, ingested by one real tick."""
    faults = [] if pair else [Fault(start_day=FAULT_DAY, segment="region", value="south", cls="critical",
                                    recall_factor=0.1)]
    scen = scenario(faults=faults)
    data = simulate(scen, seed=5)
    if pair:  # region=south & sex=F: a cause the search names as an intersection
        break_pair(data, start=scen.start_epoch + FAULT_DAY * DAY, cls="critical")
    for frame in (data.predictions, data.reference):
        frame["region"] = frame["region"].replace(NAMES)
    write_logs(data, directory, fmt="csv")
    config = load_config(write_config(directory, scen, database_url=db_url))
    engine = make_engine(config.database_url)
    try:
        summary = run_tick(engine, config, as_of=scen.start_epoch + (scen.days + LABEL_DAYS) * DAY, notify=False)
        with engine.connect() as conn:
            found = incident_reads.incidents(conn)
    finally:
        engine.dispose()
    return summary.models[0], found


def test_a_value_with_an_ampersand_is_named_as_the_cause_of_its_incident(tmp_path, db_url):
    model, found = _tick(tmp_path, db_url, pair=False)
    assert not [error for error in model.errors if "incidents" in error], model.errors
    assert list(zip(found["segment"], found["segment_value"], strict=True)) == [("region", "R&D")]
    assert "region=R&D" in found["explains"].iloc[0]


def test_an_intersection_whose_value_holds_an_ampersand_groups_without_error(tmp_path, sqlite_url):
    model, found = _tick(tmp_path, sqlite_url, pair=True)
    assert not [error for error in model.errors if "incidents" in error], model.errors
    causes = list(zip(found["segment"], found["segment_value"], strict=True))
    assert causes == [("sex&region", "F&R&D")], causes  # named whole, as the search found it


def test_slice_pairs_splits_only_what_it_can_tell_apart():
    assert slice_pairs("*", "*") == ()
    assert slice_pairs("dept", "R&D") == (("dept", "R&D"),)
    assert slice_pairs("region&sex", "south&F") == (("region", "south"), ("sex", "F"))
    assert slice_pairs("region&sex", "R&D&F") is None  # R&D + F, or R + D&F
    assert slice_pairs("region&sex", "south") is None


@pytest.mark.parametrize("name", ["a&b", "*"])
def test_a_segment_name_that_would_read_as_an_intersection_or_the_overall_series_is_refused(name):
    text = f"""
database_url = "sqlite:///m.db"
[[models]]
name = "m"
classes = ["a", "b"]
segments = ["{name}"]
[models.predictions]
path = "p/*"
[models.labels]
path = "l/*"
"""
    with pytest.raises(ConfigError, match="segments"):
        parse_config(tomllib.loads(text))
