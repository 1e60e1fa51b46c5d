"""Incidents on simulated workspaces whose faults are known, through the real tick: one
incident per fault, named by its true cause (one value, an intersection, a value of a
high-cardinality segment, a global shift, two independent faults at once), none on a stable
stream, and one notification per fault to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from monitor.alerts.models import AlertEvent
from monitor.alerts.outbox import deliver_pending
from monitor.alerts.service import alerts_frame
from monitor.config import Channel, MonitorConfig
from monitor.read import incidents as incident_reads
from monitor.simulate import Fault
from monitor.store.db import make_engine
from tests.alerts.conftest import HttpReceiver
from tests.conftest import BACKENDS, fresh_database_url
from tests.incidents.simworld import World, build, scenario

FAULT_DAY = 14


def fault(segment: str | None, value: str | None, recall_factor: float = 0.1) -> Fault:
    return Fault(start_day=FAULT_DAY, segment=segment, value=value, cls="critical", recall_factor=recall_factor)


WORLDS = {
    "south": dict(scen=scenario(faults=[fault("region", "south")])),
    "pair": dict(scen=scenario(), pair_fault=FAULT_DAY),
    "many_regions": dict(scen=scenario(n_regions=30, rows_per_day=4000, faults=[fault("region", "region_08")])),
    "global": dict(scen=scenario(faults=[fault(None, None, recall_factor=0.3)])),
    "two": dict(scen=scenario(faults=[fault("region", "south"), fault("age_band", "55+")])),
    "stable": dict(scen=scenario()),
}


def _world(kind: str, backend: str, request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> World:
    directory = factory.mktemp(f"incidents-{kind}-{backend}")
    spec = WORLDS[kind]
    return build(directory, fresh_database_url(backend, request, directory), spec["scen"],  # type: ignore[arg-type]
                 pair_fault=spec.get("pair_fault"))  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=BACKENDS)
def south(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    return _world("south", request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The SQLite world named by the test's indirect parameter (built once per module and kind)."""
    return _world(request.param, "sqlite", request, tmp_path_factory)


def on(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("world", [kind], indirect=True)


def incidents(world: World) -> list[dict]:  # type: ignore[type-arg]
    engine = make_engine(world.config.database_url)
    try:
        with engine.connect() as conn:
            return incident_reads.incidents(conn).sort_values("id").to_dict("records")
    finally:
        engine.dispose()


def causes(world: World) -> list[str]:
    return [f"{i['segment']}={i['segment_value']}" for i in incidents(world)]


def test_a_fault_in_one_region_is_one_incident_that_names_the_region_and_explains_the_others(south: World) -> None:
    [incident] = incidents(south)
    assert (incident["segment"], incident["segment_value"], incident["state"]) == ("region", "south", "open")
    assert "region=south" in incident["explains"] and "*" in incident["explains"]
    assert incident["n_alerts"] == len(incident["explains"]) >= 3
    assert incident["value"] < incident["low"] + 1 and incident["high"] < incident["reference_value"]
    assert "dropped in region=south" in incident["message"] and "95% CI" in incident["message"]
    engine = make_engine(south.config.database_url)
    try:
        with engine.connect() as conn:
            alerts = alerts_frame(conn)
            own = conn.execute(select(AlertEvent.outcome).where(AlertEvent.incident_id.is_(None))).scalars().all()
    finally:
        engine.dispose()
    # every alert of the fault is a member, visible with its incident; none notifies on its own
    assert alerts["incident_id"].tolist() == [incident["id"]] * len(alerts)
    assert own and set(own) == {"inhibited"}


@on("pair")
def test_a_fault_in_an_intersection_is_named_by_the_intersection(world: World) -> None:
    assert causes(world) == ["sex&region=F&south"]


@on("many_regions")
def test_a_fault_in_one_value_of_a_high_cardinality_segment_is_named_by_that_value(world: World) -> None:
    assert causes(world) == ["region=region_08"]


@on("global")
def test_a_global_shift_is_one_global_incident_that_says_so(world: World) -> None:
    [incident] = incidents(world)
    assert (incident["segment"], incident["segment_value"]) == ("*", "*")
    assert "global: no small set of slices explains it" in incident["message"]
    assert len(incident["explains"]) >= 5


@on("two")
def test_two_independent_faults_at_once_are_two_incidents_with_the_right_causes(world: World) -> None:
    assert causes(world) == ["region=south", "age_band=55+"]


@on("stable")
def test_a_stable_stream_opens_no_incident(world: World) -> None:
    assert incidents(world) == []


def _deliver(world: World, receiver: HttpReceiver) -> list[dict]:  # type: ignore[type-arg]
    config: MonitorConfig = world.config.model_copy(deep=True)
    config.channels = [Channel(type="webhook", url=receiver.url)]
    engine = make_engine(config.database_url)
    try:
        deliver_pending(engine, config)
    finally:
        engine.dispose()
    return receiver.delivered


@on("two")
def test_each_fault_sends_exactly_one_notification_naming_its_cause(world: World, http_receiver: HttpReceiver) -> None:
    bodies = _deliver(world, http_receiver)
    assert sorted(b["alerts"][0]["labels"]["segment_value"] for b in bodies) == ["55+", "south"]
    for body in bodies:
        [alert] = body["alerts"]
        assert body["event"] == "firing" and alert["labels"]["incident_id"]
        assert "95% CI" in alert["annotations"]["description"] and alert["annotations"]["explains"]
        assert int(alert["annotations"]["support"]) > 0
