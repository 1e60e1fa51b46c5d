"""`monitor slices` on simulated workspaces whose fault is known: the true cause is named
first, a global drop is called global, a stable stream has no cause, and the numbers equal
sklearn/statsmodels on the raw rows the monitor can see."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import recall_score
from statsmodels.stats.proportion import proportion_confint

from monitor.simulate import Fault
from monitor.timeutil import to_iso
from tests.conftest import fresh_database_url
from tests.incidents.simworld import WINDOW, World, build, read_slices, scenario, visible_rows

FAULT_DAY = 14


def south(recall_factor: float = 0.1, segment: str | None = "region") -> list[Fault]:
    return [Fault(start_day=FAULT_DAY, segment=segment, value="south" if segment else None, cls="critical",
                  recall_factor=recall_factor)]


@pytest.fixture(scope="module")
def south_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("slices-south")
    return build(directory, fresh_database_url("sqlite", request, directory), scenario(faults=south()))


def _causes(frame: pd.DataFrame) -> list[str]:
    rows = frame[frame["status"] == "cause"]
    return [f"{s}={v}" for s, v in zip(rows["segment"], rows["segment_value"], strict=True)]


def test_a_fault_in_one_region_is_the_first_cause_and_explains_the_overall_drop(south_world: World) -> None:
    frame = read_slices(south_world)
    overall, first = frame.iloc[0], frame.iloc[1]
    assert (overall["segment"], overall["status"], overall["explained_by"]) == ("*", "explained", "region=south")
    assert (first["segment"], first["segment_value"], first["status"]) == ("region", "south", "cause")
    assert _causes(frame) == ["region=south"]
    # the attributes that only overlap the region carry its drop diluted: explained by it
    sex = frame[frame["segment"] == "sex"]
    assert set(sex["status"]) <= {"explained", "weak"}
    assert first["share"] > 0.6 and first["lift"] > 2


def test_the_cli_prints_the_same_records(south_world: World) -> None:
    from monitor.cli import main

    arguments = ["--config", str(south_world.config_path), "slices", "--class", "critical", "--to",
                 to_iso(south_world.end), "--format", "json"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert records[0]["explained_by"] == "region=south" and records[1]["segment_value"] == "south"
    assert records[0]["end"] == to_iso(south_world.end) and records[0]["window"] == "7d"
    bad = CliRunner().invoke(main, [*arguments[:2], "slices", "--class", "no-such-class"])
    assert bad.exit_code == 2 and "unknown class" in bad.output


def test_values_equal_sklearn_and_statsmodels_on_the_visible_rows(south_world: World) -> None:
    rows = visible_rows(south_world.data, south_world.as_of, south_world.end, WINDOW)
    frame = read_slices(south_world).set_index(["segment", "segment_value"])
    cases = {("*", "*"): np.ones(len(rows), dtype=bool),
             ("region", "south"): (rows["region"] == "south").to_numpy(),
             ("sex&region", "F&south"): ((rows["sex"] == "F") & (rows["region"] == "south")).to_numpy()}
    for key, inside in cases.items():
        part = rows[inside & (rows["label"] == "critical").to_numpy()]
        record = frame.loc[key]
        y_true, y_pred = np.ones(len(part), dtype=bool), (part["prediction"] == "critical").to_numpy()
        low, high = proportion_confint(int(y_pred.sum()), len(part), alpha=0.05, method="wilson")
        assert record["support"] == len(part), key
        assert record["tp"] == int(y_pred.sum()), key
        assert record["recall"] == pytest.approx(recall_score(y_true, y_pred), abs=1e-12), key
        assert (record["recall_low"], record["recall_high"]) == pytest.approx((low, high), abs=1e-9), key
        excess = record["reference_recall"] * record["support"] - record["tp"]
        assert record["excess_fn"] == pytest.approx(excess, abs=1e-9), key


def test_a_fault_in_an_intersection_is_found_at_depth_2(tmp_path: Path, sqlite_url: str) -> None:
    world = build(tmp_path, sqlite_url, scenario(), pair_fault=FAULT_DAY)
    frame = read_slices(world, depth=2)
    assert _causes(frame) == ["sex&region=F&south"]
    assert frame.iloc[0]["explained_by"] == "sex&region=F&south"
    parents = frame.set_index(["segment", "segment_value"]).loc[[("sex", "F"), ("region", "south")]]
    assert set(parents["status"]) <= {"explained", "weak"}


def test_a_drop_everywhere_is_global(tmp_path: Path, sqlite_url: str) -> None:
    world = build(tmp_path, sqlite_url, scenario(faults=south(0.3, segment=None)))
    frame = read_slices(world)
    assert frame.iloc[0]["status"] == "global" and pd.isna(frame.iloc[0]["explained_by"])
    assert _causes(frame) == []


def test_a_stable_stream_has_no_drop_and_no_cause(tmp_path: Path, db_url: str) -> None:
    world = build(tmp_path, db_url, scenario())
    frame = read_slices(world, depth=3)
    assert frame.iloc[0]["status"] == "no_drop"
    assert _causes(frame) == []
    assert (frame["depth"] <= 3).all() and (frame["support"] >= 10).all()
