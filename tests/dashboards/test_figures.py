"""Pure figure functions on frames shaped like the docs/contract.md `metrics` records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards.figures import core as figures
from dashboards.figures.style import PALETTE, empty_figure, is_empty


def metrics_rows(ends: int = 6, classes=("routine", "critical"), values=("*",), provisional_last: int = 2):
    rows = []
    rng = np.random.default_rng(0)
    for e in range(ends):
        for cls in classes:
            for value in values:
                support = int(rng.integers(20, 200))
                tp = int(rng.integers(0, support))
                rows.append({
                    "end": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=e), "class": cls,
                    "segment": "*" if value == "*" else "region", "segment_value": value,
                    "support": support, "tp": tp, "recall": tp / support,
                    "recall_low": max(0, tp / support - 0.1), "recall_high": min(1, tp / support + 0.1),
                    "precision": 0.5, "precision_low": 0.4, "precision_high": 0.6, "f1": 0.5,
                    "label_coverage": 0.9, "n_labeled": 500, "n_predictions": 600,
                    "provisional": e >= ends - provisional_last, "recall_estimated": 0.55,
                })
    return pd.DataFrame(rows)


def scatters(figure):
    return [t for t in figure.data if t.type == "scatter"]


def traces(figure, **match):
    return [t for t in figure.data if all(getattr(t, k) == v for k, v in match.items())]


def test_classes_over_time_draws_bands_mature_lines_provisional_tails_and_support() -> None:
    frame = metrics_rows()
    figure = figures.classes_over_time(frame, metric="recall", minority=["critical"])
    assert not is_empty(figure)
    assert "Recall per class" in figure.layout.title.text
    mature = traces(figure, name="critical (minority)")[0]
    crit = frame[frame["class"] == "critical"].sort_values("end")
    assert np.isnan(mature.y[-1]) and np.isnan(mature.y[-2])  # provisional points are not solid
    assert mature.y[0] == pytest.approx(crit["recall"].iloc[0])
    tails = [t for t in scatters(figure) if t.line.dash == "dot"]
    assert len(tails) == 2  # one dotted provisional tail per class
    bands = [t for t in scatters(figure) if t.fill == "tonexty"]
    assert len(bands) == 2
    assert list(bands[0].y) == pytest.approx(list(frame[frame["class"] == "critical"].sort_values("end")["recall_low"]))
    bars = [t for t in figure.data if t.type == "bar"]
    assert sum(sum(b.y) for b in bars) == frame["support"].sum()
    estimated = [t for t in scatters(figure) if "estimated" in (t.name or "")]
    assert len(estimated) == 2 and estimated[0].line.dash == "dash"
    assert figure.layout.yaxis.title.text.startswith("Recall")
    # the minority class's bars (tens) stay visible beside the majority's (thousands)
    assert figure.layout.yaxis2.title.text == "labelled positives (log)" and figure.layout.yaxis2.type == "log"
    assert mature.line.color in PALETTE


def test_f1_has_no_band_and_says_so() -> None:
    figure = figures.class_detail(metrics_rows(), "critical")
    names = [t.name for t in figure.data if t.name]
    assert "F1 (no interval)" in names and "Recall" in names
    assert len([t for t in scatters(figure) if t.fill == "tonexty"]) == 2  # recall and precision


def test_every_figure_says_why_it_is_empty() -> None:
    empty = metrics_rows().iloc[0:0]
    for figure in (figures.classes_over_time(empty), figures.class_detail(empty, "critical"),
                   figures.segment_heatmap(empty, segment="region", min_support=30),
                   figures.segment_lines(empty, cls="critical", segment="region"),
                   figures.confusion_figure(pd.DataFrame(columns=["true_class", "pred_class", "n"]), []),
                   figures.label_arrival(pd.DataFrame(columns=["delay_hours", "coverage"])),
                   figures.sparkline(empty, title="t")):
        assert is_empty(figure)
        assert figure.layout.annotations[0].text
        assert figure.layout.title.text


def test_confusion_matrix_rows_are_shares_of_the_true_class() -> None:
    cells = pd.DataFrame({"true_class": ["a", "a", "b", "b", "c"], "pred_class": ["a", "b", "b", "a", "c"],
                          "n": [30, 10, 5, 15, 7]})
    figure = figures.confusion_figure(cells, ["a", "b", "c"], end="2024-01-08T00:00:00Z")
    heat = figure.data[0]
    z = np.array(heat.z, dtype=float)
    assert z.sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert z[0][0] == pytest.approx(0.75)  # recall of a = 30 / 40
    assert heat.text[1][0].startswith("15")
    assert list(heat.y) == ["a", "b", "c"]


def test_segment_heatmap_blanks_cells_under_min_support_and_sorts_worst_first() -> None:
    latest = pd.DataFrame({
        "end": pd.Timestamp("2024-01-08", tz="UTC"), "segment_value": ["north", "south", "tiny"],
        "class": "critical", "recall": [0.8, 0.2, 0.0], "support": [100, 80, 3], "provisional": False,
    })
    figure = figures.segment_heatmap(latest, segment="region", min_support=30, sort_class="critical")
    heat = figure.data[0]
    assert list(heat.y) == ["tiny", "south", "north"]
    assert np.isnan(heat.z[0][0]) and "insufficient" in heat.text[0][0]
    assert heat.z[1][0] == pytest.approx(0.2) and "n=80" in heat.text[1][0]


def test_segment_heatmap_of_thousands_of_values_draws_the_worst_judged_ones_only() -> None:
    """A pair of 500-value attributes has up to 250,000 values: every row made a figure of
    megabytes (bench/segments.py). The worst values with enough support come first, then
    those too small to judge, and the title says how many there are."""
    values = [f"v{i:04d}" for i in range(5000)]
    latest = pd.DataFrame({
        "end": pd.Timestamp("2024-01-08", tz="UTC"), "segment_value": values, "class": "critical",
        "recall": [0.0] * 4000 + [0.5 + i / 2000 for i in range(1000)],
        "support": [2] * 4000 + [100] * 1000, "provisional": False,
    })
    figure = figures.segment_heatmap(latest, segment="a&b", min_support=30, sort_class="critical")
    heat = figure.data[0]
    assert len(heat.y) == figures.HEATMAP_ROWS
    assert list(heat.y[:3]) == ["v4000", "v4001", "v4002"]
    assert "5,000 values" in figure.layout.title.text
    assert len(figure.to_json()) < 100_000


def test_worst_slices_rank_by_shortfall_below_reference_with_insufficient_support_last() -> None:
    latest = pd.DataFrame({
        "segment_value": ["a", "b", "c", "d", "e"], "class": ["critical"] * 4 + ["urgent"],
        "recall": [0.50, 0.45, 0.10, 0.70, 0.30], "recall_low": [0.45, 0.20, 0.0, 0.6, 0.28],
        "recall_high": [0.55, 0.70, 0.6, 0.8, 0.32], "support": [400, 40, 5, 300, 900],
        "reference_recall": [0.7, 0.7, 0.7, 0.7, 0.31],
    })
    ranked = figures.worst_slices(latest, min_support=30)
    # a: interval entirely 0.15 below its reference; urgent e is low but as usual
    assert list(ranked["segment_value"]) == ["a", "b", "e", "d", "c"]
    assert ranked.loc[4, "status"] == "insufficient data"
    assert ranked.loc[0, "drop"] == pytest.approx(0.2)


def test_latest_window_prefers_the_newest_mature_one() -> None:
    frame = metrics_rows(ends=5, provisional_last=2)
    latest = figures.latest_window(frame)
    assert latest["end"].nunique() == 1
    assert latest["end"].iloc[0] == pd.Timestamp("2024-01-03", tz="UTC")


def test_empty_figure_text_is_not_html() -> None:
    figure = empty_figure("<b>x</b>", title="t", hint="<script>")
    assert "<b>" not in figure.layout.annotations[0].text
    assert "&lt;script&gt;" in figure.layout.annotations[0].text


def _figures_on_sample_data():
    """Every figure function of the dashboard on small inputs (data and empty)."""
    from dashboards.figures import drift, fairness

    frame = metrics_rows().assign(reference_recall=0.6)
    segments = metrics_rows(values=("north", "south", "east"))
    latest = figures.latest_window(segments)
    ends = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC")
    records = pd.concat([pd.DataFrame({"end": ends, "feature": f, "method": "js", "value": np.linspace(0, 0.4, 8) * i,
                                       "threshold": 0.2, "drifted": np.linspace(0, 0.4, 8) * i > 0.2})
                         for i, f in enumerate("ab", start=1)])
    ranked = records[records["end"] == ends[-1]].assign(methods_drifted=1, n_current=100)
    gaps = pd.DataFrame({"end": ends, "attribute": "sex", "ratio": np.linspace(0.5, 1, 8),
                         "ratio_low": np.linspace(0.4, 0.9, 8), "ratio_high": np.linspace(0.6, 1.0, 8),
                         "group_min": "f", "group_max": "m", "flagged": np.linspace(0.5, 1, 8) < 0.8})
    groups = pd.DataFrame({"attribute": "sex", "group": ["f", "m"], "reference_group": "m", "reference_value": 0.7,
                           "value": [0.5, np.nan], "low": [0.4, np.nan], "high": [0.6, np.nan], "support": [100, 3],
                           "flagged": [True, False], "ratio": [0.7, np.nan], "ratio_low": [0.6, np.nan],
                           "ratio_high": [0.8, np.nan]})
    cells = pd.DataFrame({"true_class": ["a", "a", "b"], "pred_class": ["a", "b", "b"], "n": [30, 10, 5]})
    yield figures.classes_over_time(frame, metric="recall", minority=["critical"])
    yield figures.classes_over_time(frame, metric="f1")
    yield figures.class_detail(frame, "critical")
    yield figures.segment_heatmap(latest, segment="region", min_support=100, sort_class="critical")
    yield figures.segment_lines(segments, cls="critical", segment="region", reference=0.5)
    yield figures.confusion_figure(cells, ["a", "b"], end="2024-01-08")
    yield figures.sparkline(frame, title="t")
    yield figures.label_arrival(pd.DataFrame({"delay_hours": [0.1, 2.0, 10.0], "coverage": [0.1, 0.5, 0.9]}))
    yield empty_figure("nothing", title="t", hint="h")
    yield drift.ranking_figure(ranked, method="js", window="1d")
    yield drift.sparklines_figure(records, method="js", features=["a", "b"], window="1d")
    yield drift.distribution_figure(pd.DataFrame({"bin": ["x", "y"], "reference_share": [0.4, 0.6],
                                                  "current_share": [0.5, 0.5], "reference_n": [4, 6],
                                                  "current_n": [5, 5]}), feature="f", window="1d", end=ends[-1])
    yield fairness.gap_over_time(gaps, cls="critical", window="7d")
    yield fairness.group_bars(groups, attribute="sex", cls="critical", end=ends[-1])


def test_figures_built_without_validation_are_what_plotly_validation_gives() -> None:
    """The figure functions skip plotly's per-property validation (for speed): what they hold
    must pass it unchanged (a misspelt property or a value plotly would coerce fails here)."""
    import json

    import plotly.graph_objects as go
    from plotly.io.json import to_json_plotly

    for figure in _figures_on_sample_data():
        sent = figure.to_plotly_json()
        validated = go.Figure(sent)  # raises on an unknown property or an invalid value
        assert json.dumps(json.loads(to_json_plotly(validated.to_plotly_json())), sort_keys=True) == \
            json.dumps(json.loads(to_json_plotly(sent)), sort_keys=True), figure.layout.title.text
        figure.update_layout(height=200)  # later edits are validated as usual
        with pytest.raises(ValueError):
            figure.update_layout(not_a_property=1)
