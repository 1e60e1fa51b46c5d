"""The best current recall of a window whose labels are partly in (issue 18).

The labelled predictions of a window have realized counts; the others only the estimate.
They are different predictions, so the best figure adds the two parts:

    recall_best = (tp_L + E[tp_U]) / (tp_L + fn_L + E[tp_U] + E[fn_U])

tp_L, fn_L are the realized one-vs-rest counts of the labelled predictions (confusion
counts); E[tp_U], E[fn_U] the expected counts of the unlabelled ones. The expected counts are
kept per (bucket, slice, class), not per labelled state, so the unlabelled part is taken in
proportion: E[tp_U] = E[tp] x (share of the window's predictions of the class still
unlabelled), E[fn_U] = E[fn] x (share of its other predictions still unlabelled); this
assumes labels arrive independently of the truth given the prediction (document it where
that fails: a class whose labels come later than the others'). The variance is the delta
method's over the unlabelled part (its Poisson-binomial variances in the same proportion)
plus the calibration error (`checks`, tau^2) times the unlabelled part's share of the
expected positives; the realized part is known. With every label in, recall_best is the
realized recall and its interval collapses to it; with none, it is the estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.checks import CONFUSION
from monitor.estimation.service import ratio_interval, window_estimates
from monitor.rates import safe_divide
from monitor.store.models import PredictionCount
from monitor.store.windows import WindowSpec, windowed_counts

PREDICTIONS = cast(Table, PredictionCount.__table__)
BLEND_COLUMNS = [
    "end", "segment", "segment_value", "class", "recall_best", "recall_best_low", "recall_best_high",
    "recall_realized", "recall_estimated", "labelled_share", "n_predictions", "n_labelled",
]
KEYS = ["end", "segment", "segment_value"]


def _per_class(frame: pd.DataFrame, key: str, classes: list[str]) -> dict[str, pd.Series]:
    """Sums of `n` per window series for each class value of column `key`."""
    table = frame.pivot_table(index=KEYS, columns=key, values="n", aggfunc="sum", fill_value=0)
    return {c: table[c] if c in table.columns else pd.Series(0, index=table.index) for c in classes}


def blend_arrays(tp_labelled: np.ndarray, fn_labelled: np.ndarray, labelled_mine: np.ndarray,
                 labelled_rest: np.ndarray, predicted_mine: np.ndarray, predicted_rest: np.ndarray,
                 expected: pd.DataFrame, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recall_best, low, high) per row: realized one-vs-rest tp/fn of the labelled
    predictions; labelled and all predictions of the class (`_mine`) and of the others
    (`_rest`); `expected` with exp_tp, exp_fn, var_tp, var_fn of all of them; tau the
    calibration error on the recall scale (module docstring)."""
    unlabelled_mine = np.clip(np.nan_to_num(1.0 - safe_divide(labelled_mine, predicted_mine)), 0.0, 1.0)
    unlabelled_rest = np.clip(np.nan_to_num(1.0 - safe_divide(labelled_rest, predicted_rest)), 0.0, 1.0)
    exp_tp = expected["exp_tp"].to_numpy(np.float64) * unlabelled_mine
    exp_fn = expected["exp_fn"].to_numpy(np.float64) * unlabelled_rest
    var_tp = expected["var_tp"].to_numpy(np.float64) * unlabelled_mine
    var_fn = expected["var_fn"].to_numpy(np.float64) * unlabelled_rest
    tp, fn = tp_labelled + exp_tp, fn_labelled + exp_fn
    best = safe_divide(tp, tp + fn)
    share_estimated = safe_divide(exp_tp + exp_fn, tp + fn)
    # the calibration error of an estimate over a share s of the positives: between s^2 tau^2
    # (a bias common to every prediction) and s tau^2 (noise, larger on a smaller part): the latter
    variance = safe_divide(fn * fn * var_tp + tp * tp * var_fn, (tp + fn) ** 4) + np.nan_to_num(share_estimated * tau**2)
    low, high = ratio_interval(best, variance)
    return best, low, high


def blended_frame(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
                  segment_sets: Sequence[tuple[str, ...]], ends=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """BLEND_COLUMNS per (end, series, class) with scores; empty (with the columns) without."""
    found = window_estimates(conn, ctx, spec, segment_sets=segment_sets, ends=ends)
    if found is None:
        return pd.DataFrame(columns=BLEND_COLUMNS)
    counts = found.counts.assign(class_name=found.classes)
    window_ends = np.unique(counts["end"].to_numpy(np.int64))
    confusion = windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                                key_columns=["true_class", "pred_class"], ends=window_ends, bucket=ctx.bucket)
    predicted = windowed_counts(conn, PREDICTIONS, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                                key_columns=["pred_class"], ends=window_ends, bucket=ctx.bucket)
    classes = list(ctx.classes)
    index = pd.MultiIndex.from_frame(counts[KEYS])
    zero = pd.Series(0.0, index=index)

    def aligned(series: pd.Series | None) -> np.ndarray:
        if series is None:
            return zero.to_numpy()
        return series.reindex(index, fill_value=0).to_numpy(np.float64)

    by_pred = _per_class(predicted, "pred_class", classes) if len(predicted) else {}
    labelled_by_pred = _per_class(confusion, "pred_class", classes) if len(confusion) else {}
    totals = predicted.groupby(KEYS)["n"].sum() if len(predicted) else None
    labelled_totals = confusion.groupby(KEYS)["n"].sum() if len(confusion) else None
    hits = confusion[confusion["true_class"] == confusion["pred_class"]] if len(confusion) else confusion
    true_hits = _per_class(hits, "true_class", classes) if len(hits) else {}
    positives = _per_class(confusion, "true_class", classes) if len(confusion) else {}
    names = counts["class_name"].to_numpy()
    n_class, l_class, tp_l, pos_l = (np.zeros(len(counts)) for _ in range(4))
    for name in classes:
        rows = names == name
        n_class[rows] = aligned(by_pred.get(name))[rows]
        l_class[rows] = aligned(labelled_by_pred.get(name))[rows]
        tp_l[rows] = aligned(true_hits.get(name))[rows]
        pos_l[rows] = aligned(positives.get(name))[rows]
    n_all, l_all = aligned(totals), aligned(labelled_totals)
    tau = found.calibration_error if found.calibration_error is not None else np.zeros(len(counts))
    best, low, high = blend_arrays(tp_l, pos_l - tp_l, l_class, l_all - l_class, n_class, n_all - n_class,
                                   counts, tau)
    return pd.DataFrame({
        "end": counts["end"].astype(np.int64), "segment": counts["segment"], "segment_value": counts["segment_value"],
        "class": found.classes, "recall_best": best, "recall_best_low": low, "recall_best_high": high,
        "recall_realized": safe_divide(tp_l, pos_l), "recall_estimated": found.rates["recall_estimated"],
        "labelled_share": safe_divide(l_all, n_all), "n_predictions": n_all.astype(np.int64),
        "n_labelled": l_all.astype(np.int64),
    })[BLEND_COLUMNS]
