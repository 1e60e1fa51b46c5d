"""Hostile strings from data never become markup in a dashboard figure (issue 12).

Plotly draws a little HTML in every text (`<a href>` as a live link, `<b>`, `<br>`), so every
figure function gets class names, segment values, feature names, groups and bins that are
such markup, and the figure's JSON must hold them only as entities. The browser side (no
<a> element in the SVG) is tests/e2e/test_hostile_values.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from dashboards.figures import core, drift, fairness
from dashboards.figures.style import empty_figure, plain, plain_frame

LINK = '<a href="http://evil">x</a>'
BOLD = "<b>bold</b>"
BREAK = "v<br>2"
AMP = "R&D <i>"
# What would mean the payload reached plotly as markup (our own templates use <br>, <b> and
# <span> without these exact texts, so those alone prove nothing).
LEAKS = re.compile(r"<a[\s>]|<b>bold|v<br>2|<i>")


def metrics(classes: tuple[str, ...], values: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for e in range(5):
        for cls in classes:
            for value in values:
                rows.append({"end": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=e), "class": cls,
                             "segment": "*" if value == "*" else "region", "segment_value": value,
                             "support": 80 + e, "recall": 0.5, "recall_low": 0.4, "recall_high": 0.6,
                             "precision": 0.5, "precision_low": 0.4, "precision_high": 0.6, "f1": 0.5,
                             "label_coverage": 0.9, "n_labeled": 500, "n_predictions": 600,
                             "provisional": e == 4, "recall_estimated": 0.55, "reference_recall": 0.7})
    return pd.DataFrame(rows)


def hostile_figures():
    classes = (LINK, BOLD)
    overall = metrics(classes, ("*",))
    segments = metrics(classes, (LINK, BREAK, AMP))
    latest = core.latest_window(segments)
    ends = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    records = pd.concat([pd.DataFrame({"end": ends, "feature": name, "method": "js", "value": np.linspace(0, 0.4, 6),
                                       "threshold": 0.2, "drifted": np.linspace(0, 0.4, 6) > 0.2})
                         for name in (LINK, BREAK)])
    ranked = records[records["end"] == ends[-1]].assign(methods_drifted=1, n_current=100)
    gaps = pd.DataFrame({"end": ends, "attribute": LINK, "ratio": 0.6, "ratio_low": 0.5, "ratio_high": 0.7,
                         "group_min": BOLD, "group_max": BREAK, "flagged": True})
    groups = pd.DataFrame({"attribute": LINK, "group": [BOLD, AMP], "reference_group": AMP, "reference_value": 0.7,
                           "value": [0.5, 0.7], "low": [0.4, 0.6], "high": [0.6, 0.8], "support": [100, 90],
                           "flagged": [True, False], "ratio": [0.7, 1.0], "ratio_low": [0.6, 0.9],
                           "ratio_high": [0.8, 1.1]})
    cells = pd.DataFrame({"true_class": [LINK, LINK, BOLD], "pred_class": [LINK, BOLD, BOLD], "n": [30, 10, 5]})
    bins = pd.DataFrame({"bin": [LINK, BREAK], "reference_share": [0.4, 0.6], "current_share": [0.5, 0.5],
                         "reference_n": [4, 6], "current_n": [5, 5]})
    yield "classes_over_time", core.classes_over_time(overall, minority=[LINK])
    yield "class_detail", core.class_detail(overall, LINK)
    yield "class_detail (empty)", core.class_detail(overall, BREAK)
    yield "segment_heatmap", core.segment_heatmap(latest, segment=BREAK, min_support=10, sort_class=LINK)
    yield "segment_lines", core.segment_lines(segments, cls=LINK, segment=BREAK, reference=0.5)
    yield "confusion_figure", core.confusion_figure(cells, [LINK, BOLD], end="2024-01-08")
    yield "sparkline", core.sparkline(overall, title=f"model {LINK}")
    yield "empty_figure", empty_figure(f"nothing for {LINK}", title=BOLD, hint=BREAK)
    yield "ranking_figure", drift.ranking_figure(ranked, method="js", window="1d", series_label=f"group={BREAK}")
    yield "sparklines_figure", drift.sparklines_figure(records, method="js", features=[LINK, BREAK], window="1d")
    yield "distribution_figure", drift.distribution_figure(bins, feature=LINK, window="1d", end=ends[-1],
                                                           series_label=AMP)
    yield "gap_over_time", fairness.gap_over_time(gaps, cls=LINK, window="7d")
    yield "group_bars", fairness.group_bars(groups, attribute=LINK, cls=BOLD, end=ends[-1])


@pytest.mark.parametrize("name, figure", list(hostile_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_figure_built_from_markup_holds_it_only_as_text(name: str, figure) -> None:
    # plotly's JSON writes "<" as \u003c: decode it, as the browser will
    sent = json.dumps(json.loads(pio.to_json(figure)), ensure_ascii=False)
    assert not LEAKS.findall(sent), f"{name}: {LEAKS.findall(sent)[:3]}"
    assert "&lt;" in sent, f"{name}: the hostile value should still be shown, as text"


def test_the_hostile_values_are_still_drawn_where_they_belong() -> None:
    figure = core.confusion_figure(pd.DataFrame({"true_class": [LINK], "pred_class": [LINK], "n": [3]}), [LINK])
    assert list(figure.data[0].x) == ["&lt;a href=\"http://evil\"&gt;x&lt;/a&gt;"]
    lines = core.segment_lines(metrics((LINK,), (BREAK, AMP)), cls=LINK, segment="region")
    assert {"v&lt;br&gt;2", "R&amp;D &lt;i&gt;"} <= {t.name for t in lines.data if t.name}


def test_plain_leaves_no_angle_bracket_and_is_idempotent() -> None:
    for value in (LINK, BOLD, BREAK, AMP, "&amp; &#60; &#x3c; &", "plain text", 42):
        once = plain(value)
        assert "<" not in once and ">" not in once
        assert plain(once) == once
    assert plain("a & b") == "a &amp; b"
    assert plain("already &amp;") == "already &amp;"


def test_plain_frame_copies_only_when_something_needs_escaping() -> None:
    clean = pd.DataFrame({"class": ["a", "b"], "n": [1, 2]})
    assert plain_frame(clean) is clean
    dirty = pd.DataFrame({"class": [LINK, None], "n": [1, 2], "when": pd.to_datetime(["2024-01-01"] * 2)})
    escaped = plain_frame(dirty)
    assert escaped["class"].iloc[0] == plain(LINK) and pd.isna(escaped["class"].iloc[1])
    assert escaped["class"].dtype == dirty["class"].dtype
    assert dirty["class"].iloc[0] == LINK  # the caller's frame is untouched
    assert escaped["when"].dtype == dirty["when"].dtype
