"""What is wrong, for the Overview: open incidents, open alerts and the worst slices, each with
its evidence link.

Pure helpers over frames the read layer returned (`core._model_health` reads them inside its
transaction): `incident_links` names an incident's cause slice and links it; `open_alerts`
keeps the firing and pending alerts, most severe first; `worst_slices` ranks every slice of every attribute of one window with the Subgroups page's
own ranking (`figures.core.worst_slices`); `evidence_link` is the page (with the filters in
its URL) that shows the numbers behind a finding.
"""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import pandas as pd

from dashboards.figures import core as figures

OPEN_STATES = ("firing", "pending")
SLICE_KEY = "_slice"
WORST_COLUMNS = ["segment", "segment_value", "class", "recall", "recall_low", "recall_high", "support",
                 "reference_recall", "drop", "status", "proven", "href"]


def evidence_link(model: str, *, metric: str, cls: str | None, segment: str | None,
                  window: str | None = None) -> str:
    """The page showing the evidence of a finding, filters in the URL: a slice's rates on
    Subgroups, an overall rate on Classes, drift and fairness on their own pages."""
    query: dict[str, str] = {"model": model}
    if window:
        query["window"] = window
    if metric == "drift":
        page = "/drift"
    elif metric == "fairness":
        page = "/fairness"
    elif segment and segment != "*":
        page, query["segment"] = "/subgroups", segment
    else:
        page = "/classes"
    if cls and metric != "drift":
        query["class"] = cls
    return f"{page}?{urlencode(query)}"


def slice_name(segment: object, value: object) -> str:
    """'region=south', or 'global (overall)' for an incident's `*` cause."""
    return "global (overall)" if segment == "*" else f"{segment}={value}"


def incident_links(frame: pd.DataFrame) -> pd.DataFrame:
    """Incident records with `cause` (the slice's name) and `href` (Subgroups filtered to the
    cause's attribute and class, or Classes for a global cause)."""
    frame = frame.copy()
    frame["cause"] = [slice_name(s, v) for s, v in zip(frame["segment"], frame["segment_value"], strict=True)]
    frame["href"] = [evidence_link(str(m), metric="recall", cls=str(c), segment=str(s))
                     for m, c, s in zip(frame["model"], frame["class"], frame["segment"], strict=True)]
    return frame


def open_alerts(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """Firing and pending alerts of `model`: critical before warning, firing before pending,
    the oldest first (it has been wrong the longest); with an `href` to the evidence."""
    if frame.empty:
        return frame.assign(href=pd.Series(dtype=object))
    part = frame[(frame["model"] == model) & frame["state"].isin(OPEN_STATES)].copy()
    if part.empty:
        return part.assign(href=pd.Series(dtype=object))
    part["_severity"] = (part["severity"] != "critical").astype(int) if "severity" in part else 1
    part["_state"] = (part["state"] != "firing").astype(int)
    part = part.sort_values(["_severity", "_state", "started_at"], kind="stable")
    part["href"] = [evidence_link(model, metric=str(metric), cls=str(cls), segment=str(segment))
                    for metric, cls, segment in zip(part["metric"], part["class"], part["segment"], strict=True)]
    return part.drop(columns=["_severity", "_state"]).reset_index(drop=True)


def worst_slices(latest: pd.DataFrame, model: str, *, min_support: int, min_drop: float,
                 window: str, limit: int = 5) -> pd.DataFrame:
    """The worst slices of one window across every attribute (overall rows excluded), ranked
    as on the Subgroups page; `proven`: the interval's upper end lies below reference - min_drop."""
    if latest.empty:
        return pd.DataFrame(columns=WORST_COLUMNS)
    part = latest[latest["segment"] != "*"]
    if part.empty:
        return pd.DataFrame(columns=WORST_COLUMNS)
    # one ranking over every attribute: the slice key stands in for the segment value
    keys = part["segment"].astype(str) + "=" + part["segment_value"].astype(str)
    lookup = dict(zip(keys, zip(part["segment"], part["segment_value"], strict=True), strict=True))
    ranked = figures.worst_slices(part.assign(segment_value=keys), min_support=min_support, limit=limit)
    if ranked.empty:
        return pd.DataFrame(columns=WORST_COLUMNS)
    pairs = [lookup[key] for key in ranked["segment_value"]]
    ranked = ranked.assign(segment=[p[0] for p in pairs], segment_value=[p[1] for p in pairs])
    high = ranked["recall_high"].astype(float).to_numpy()
    reference = ranked["reference_recall"].astype(float).to_numpy()
    ranked["proven"] = ~np.isnan(high) & ~np.isnan(reference) & (high < reference - min_drop)
    ranked["href"] = [evidence_link(model, metric="recall", cls=str(cls), segment=str(segment), window=window)
                      for cls, segment in zip(ranked["class"], ranked["segment"], strict=True)]
    return ranked[WORST_COLUMNS]


def proven_drop(minority: pd.DataFrame, min_drop: float) -> bool:
    """Does the interval of any minority tile prove a drop (upper end below reference - min_drop)?"""
    if minority.empty or "reference_recall" not in minority:
        return False
    high = minority["recall_high"].astype(float).to_numpy()
    reference = minority["reference_recall"].astype(float).to_numpy()
    return bool((~np.isnan(high) & ~np.isnan(reference) & (high < reference - min_drop)).any())


NOW_COLUMNS = ("now_value", "now_low", "now_high", "now_support")


def with_current(frame: pd.DataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `now_*` from the member alert of each incident on its own cause slice and
    class (NaN when no member alert sits on the cause slice, e.g. a cause no rule watches)."""
    out = frame.copy()
    for column in NOW_COLUMNS:
        out[column] = float("nan")
    if out.empty or alerts.empty or "incident_id" not in alerts:
        return out
    members = alerts.dropna(subset=["incident_id"])
    own = {(int(r["incident_id"]), str(r["class"]), str(r["segment"]), str(r["segment_value"])): r
           for _, r in members.iterrows()}
    for index, row in out.iterrows():
        member = own.get((int(row["id"]), str(row["class"]), str(row["segment"]), str(row["segment_value"])))
        if member is None:
            continue
        for column in NOW_COLUMNS:
            out.at[index, column] = member[column.removeprefix("now_")]
    return out
