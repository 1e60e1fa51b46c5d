"""A fresh database (nothing ingested yet): every page says what to do, nothing breaks."""

from __future__ import annotations

import pytest

from dashboards.figures.style import is_empty
from monitor.config import MonitorConfig, parse_config
from tests.dashboards.helpers import page, running_app, text_of


@pytest.fixture
def fresh_config(db_url: str) -> MonitorConfig:
    return parse_config({"database_url": db_url, "models": [{
        "name": "fresh", "classes": ["a", "b", "c"], "minority_classes": ["c"], "segments": ["region"]}]})


def test_every_page_has_an_empty_state_before_any_ingest(fresh_config: MonitorConfig) -> None:
    with running_app(fresh_config):
        cards = page("overview").update_overview(None, "7d", None, None)
        over_time, detail, options, chosen, message = page("classes").update_classes(
            None, "fresh", "7d", None, None, "c", "recall", None)
        confusion = page("classes").update_confusion(None, "fresh", "7d", None)
        heatmap, lines, worst, sub_message = page("subgroups").update_subgroups(
            None, "fresh", "7d", None, None, "c", "region")
        table, choices, silences, deliveries, incidents, incident_choices = page("alerts").update_alerts(
            None, "fresh", "all", None)
        arrival, files, rejects, intake, overflow = page("data").update_data(None, "fresh")
        best, best_note = page("classes").update_best(None, "fresh", "7d", None, None, "c")
    assert "No predictions ingested yet" in text_of(cards) and "monitor ingest" in text_of(cards)
    assert "monitor ingest" in text_of(message)
    for figure in (over_time, detail, confusion, heatmap, lines, arrival, best):
        assert is_empty(figure), figure.layout.title.text
        assert figure.layout.annotations[0].text
    assert options == [] and chosen is None and choices == [] and overflow == [] and intake == []
    assert incident_choices == [] and "No incidents" in text_of(incidents) and best_note is None
    assert "Open incidents" not in text_of(cards)
    assert "No alerts" in text_of(table)
    assert "No files ingested yet" in text_of(files)
    assert "No rejected rows" in text_of(rejects)


def test_a_config_without_models_still_renders(sqlite_url: str) -> None:
    with running_app(parse_config({"database_url": sqlite_url})):
        cards = page("overview").update_overview(None, "7d", None, None)
        figure, *_ = page("classes").update_classes(None, None, "7d", None, None, None, "recall", None)
    assert "No model configured" in text_of(cards)
    assert is_empty(figure)
