"""Page callbacks called directly on a seeded database (a real scheduler tick on simulated
data with a fault: `critical` recall collapses in region south from day 10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, recall_score

from dashboards.data import core
from dashboards.figures.style import is_empty
from dashboards.filters import Filters
from monitor.simulate import visible
from tests.dashboards.helpers import page, running_app, text_of
from tests.dashboards.seeding import AS_OF, HOSTILE, Seeded


def oracle_window(seeded: Seeded, end: pd.Timestamp, window_days: int = 7) -> pd.DataFrame:
    """Labelled predictions of the window ending at `end`, as the monitor could see them."""
    predictions, labels = visible(seeded.data, AS_OF)
    stamps = pd.to_datetime(predictions["timestamp"], utc=True)
    inside = predictions[(stamps >= end - pd.Timedelta(days=window_days)) & (stamps < end)]
    return inside.merge(labels[["prediction_id", "label"]], on="prediction_id")


def test_classes_page_draws_every_class_and_matches_sklearn(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        over_time, detail, options, chosen, message = page("classes").update_classes(
            None, "triage", "7d", None, None, "critical", "recall", None)
        assert not is_empty(over_time) and not is_empty(detail)
        assert message is None
        names = {t.name for t in over_time.data if t.name}
        assert {"critical (minority)", "routine", "urgent"} <= names
        assert chosen in {o["value"] for o in options}
        result = core.class_metrics(Filters(model="triage", window="7d", cls="critical"))
    row = result.frame[(result.frame["class"] == "critical")
                       & (result.frame["end"] == pd.Timestamp(chosen))].iloc[0]
    window = oracle_window(seeded, pd.Timestamp(chosen))
    expected = recall_score(window["label"] == "critical", window["prediction"] == "critical")
    assert row["recall"] == pytest.approx(expected)
    assert row["support"] == int((window["label"] == "critical").sum())
    assert row["recall_low"] < row["recall"] < row["recall_high"]


def test_changing_the_metric_and_the_class_changes_the_figures(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        classes = page("classes")
        recall = classes.update_classes(None, "triage", "7d", None, None, "critical", "recall", None)
        precision = classes.update_classes(None, "triage", "7d", None, None, "urgent", "precision", None)
    assert recall[0].layout.title.text.startswith("Recall")
    assert precision[0].layout.title.text.startswith("Precision")
    assert "critical" in recall[1].layout.title.text and "urgent" in precision[1].layout.title.text


def test_confusion_matrix_of_a_window_matches_sklearn(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        classes = page("classes")
        *_, options, chosen, _ = classes.update_classes(None, "triage", "7d", None, None, "critical", "recall", None)
        figure = classes.update_confusion(chosen, "triage", "7d", None)
    heat = figure.data[0]
    order = list(heat.y)
    window = oracle_window(seeded, pd.Timestamp(chosen))
    expected = confusion_matrix(window["label"], window["prediction"], labels=order)
    counts = np.array([[int(cell.split("<br>")[0]) for cell in row] for row in heat.text])
    assert (counts == expected).all()


def test_subgroups_rank_the_faulty_slice_worst(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        heatmap, lines, worst, message = page("subgroups").update_subgroups(
            None, "triage", "7d", None, None, "critical", "region")
    assert not is_empty(heatmap) and not is_empty(lines)
    assert "south" in list(heatmap.data[0].y)
    first_row = worst.children[1].children[0]  # Tbody, first row
    assert text_of(first_row.children[0]) == "south"
    assert text_of(first_row.children[1]) == "critical"
    with running_app(seeded.config_path):
        frame = core.subgroup_metrics(Filters(model="triage", segment="region")).frame
    assert HOSTILE in set(frame["segment_value"])  # a hostile value is data, kept as text


def test_subgroups_with_overall_segment_use_the_worst_attribute_and_say_so(seeded: Seeded) -> None:
    """Issue 14: the default is the attribute with the worst finding (the seeded region fault),
    not the first configured one (sex)."""
    with running_app(seeded.config_path):
        heatmap, _, _, message = page("subgroups").update_subgroups(
            None, "triage", "7d", None, None, "critical", "*")
    assert "Showing segment 'region'" in text_of(message)
    assert "by region" in heatmap.layout.title.text


def test_overview_shows_minority_recall_against_reference_and_firing_alerts(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        cards = page("overview").update_overview(None, "7d", None, None)
        health = core.overview(Filters(window="7d"))[0]
    text = text_of(cards)
    assert "triage" in text and "Recall of critical (7d window ending 2024-01-22)" in text and "reference" in text
    assert health.firing >= 1
    assert health.minority["reference_recall"].notna().all()
    assert health.last_ingest is not None and health.rejected_rows == 1


def test_data_page_lists_files_rejects_and_label_arrival(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        arrival, files, rejects, intake, overflow = page("data").update_data(None, "triage")
    assert not is_empty(arrival)
    assert "predictions_extra.csv" in text_of(files)
    assert "timestamp" in text_of(rejects)
    assert arrival.data[0].y[-1] <= 1.0
    assert overflow == []  # a dozen regions: far under the segment value limit
    assert intake == []  # no stream consumed, nothing posted over HTTP: nothing shown


def test_url_sets_the_filters_and_bad_values_fall_back(seeded: Seeded) -> None:
    with running_app(seeded.config_path):
        layout = __import__("dashboards.layout", fromlist=["sync_filters"])
        out = layout.sync_filters("?model=triage&window=30d&class=urgent&segment=region&from=2024-01-05",
                                  "triage", "7d", None, None, "critical", "*")
        bad = layout.sync_filters("?model=nope&class=<script>&segment=bogus", "triage", "7d", None, None,
                                  "critical", "region")
    model, window, start, end, class_options, cls, segment_options, segment = out
    assert (window, start, cls, segment) == ("30d", "2024-01-05", "urgent", "region")
    assert {o["value"] for o in class_options} == {"routine", "urgent", "critical"}
    assert bad[5] is not None and bad[7] == "*"


def test_alert_acknowledgement_and_silence_persist(writable_seeded: Seeded) -> None:
    with running_app(writable_seeded.config_path):
        alerts = page("alerts")
        table, choices, *_ = alerts.update_alerts(None, "triage", "firing", None)
        assert choices, "the fault should have fired an alert"
        alert_id = choices[0]["value"]
        refused, done = alerts.perform("alerts-ack", alert_id, "  ", None, None)
        assert "Enter your name" in text_of(refused)
        feedback, done = alerts.perform("alerts-ack", alert_id, "alice", "looking", None)
        assert "acknowledged by alice" in text_of(feedback) and done
        feedback, done = alerts.perform("alerts-silence", alert_id, "bob", None, "1d")
        assert "silenced for 1d" in text_of(feedback)
    with running_app(writable_seeded.config_path):  # a new app: what is stored, not what was shown
        table, _, silences, *_ = page("alerts").update_alerts(None, "triage", "all", done)
        frame = __import__("dashboards.data.alerts", fromlist=["alerts"]).alerts("triage").frame
    assert frame.loc[frame["id"] == alert_id, "acknowledged_by"].iloc[0] == "alice"
    assert "alice" in text_of(table)
    assert "bob" in text_of(silences)


def test_the_fairness_page_reads_its_groups_once_until_the_data_changes(seeded: Seeded,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attribute's groups over the range take seconds with many segment values
    (bench/segments.py): a refresh or a second visit is served from the cache, as other pages."""
    from monitor.read import quality

    reads: list[object] = []
    original = quality.fairness

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(quality, "fairness", counted)
    monkeypatch.setattr(core, "now_epoch", lambda: 1_800_000_000)  # no minute boundary between the calls
    with running_app(seeded.config_path):
        first = page("fairness").update_fairness(None, "triage", "7d", None, None, "critical", None, None, None, None)
        again = page("fairness").update_fairness(None, "triage", "7d", None, None, "critical", None, None, None, None)
    assert len(reads) == 1
    assert text_of(first[2]) == text_of(again[2]) and not is_empty(first[0])
