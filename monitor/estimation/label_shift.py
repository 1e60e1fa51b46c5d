"""A second estimator for class prevalence and precision: black-box shift estimation (BBSE).

Under label shift (the class mix P(y) changes, P(x | y) does not) the model's confusion
structure C[i, j] = P(predicted i | true j) stays as on the reference, so the predicted-class
shares q of a window satisfy q = C pi, pi the window's class prevalence (Lipton et al. 2018):

    pi = C^-1 q          precision_c = C[c, c] pi_c / q_c          (recall_c = C[c, c])

C comes from the reference's confusion counts (all slices together), q from the window's
prediction counts, so it needs no score at all. Its variance is the multinomial one of q
carried through C^-1: cov(pi) = C^-1 (diag(q) - q q^T) C^-T / n.

CBPE holds under covariate shift and is wrong under label shift (scores calibrated on the
reference are not calibrated after the class mix moves); BBSE is the reverse. When the two
prevalences disagree beyond what chance gives (by more than 3 standard errors of BBSE and by
more than 20% of the larger), at least one assumption fails: `label_shift_warning` says so.
Under label shift q lies in the convex hull of C's columns; when C^-1 q has a component more
than 3 standard errors below 0, no class mix explains q, so the change is not label shift
alone and BBSE does not hold (it is clipped at 0 and renormalised; its precision is clipped to
[0, 1]); the warning then says so, which tells a covariate shift (CBPE holds) from a label shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.service import window_estimates
from monitor.rates import safe_divide
from monitor.store.models import PredictionCount, ReferenceCount
from monitor.store.windows import WindowSpec, windowed_counts

PREDICTIONS = cast(Table, PredictionCount.__table__)
REFERENCE = cast(Table, ReferenceCount.__table__)
LABEL_SHIFT_COLUMNS = [
    "end", "segment", "segment_value", "class", "prevalence_bbse", "prevalence_bbse_se", "precision_bbse",
    "prevalence_cbpe", "precision_cbpe", "n_predictions", "label_shift_warning",
]
KEYS = ["end", "segment", "segment_value"]
Z_DISAGREE = 3.0
RELATIVE_DISAGREE = 0.2


def reference_confusion(conn: Connection, ctx: ModelContext) -> np.ndarray | None:
    """C[i, j] = P(predicted class i | true class j) on the reference (ctx.classes order);
    None without a reference, or when a class has no reference row or C is singular."""
    rows = conn.execute(select(REFERENCE.c.true_class, REFERENCE.c.pred_class, func.sum(REFERENCE.c.n))
                        .where(REFERENCE.c.model_id == ctx.model_id)
                        .group_by(REFERENCE.c.true_class, REFERENCE.c.pred_class)).all()
    index = {name: i for i, name in enumerate(ctx.classes)}
    counts = np.zeros((len(index), len(index)))
    for true, predicted, n in rows:
        if true in index and predicted in index:
            counts[index[predicted], index[true]] += float(n)
    totals = counts.sum(axis=0)
    if len(index) < 2 or (totals == 0).any():
        return None
    confusion = counts / totals
    return confusion if np.linalg.matrix_rank(confusion) == len(index) else None


def label_shift_frame(conn: Connection, ctx: ModelContext, spec: WindowSpec, *,
                      segment_sets: Sequence[tuple[str, ...]], ends=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """LABEL_SHIFT_COLUMNS per (end, series, class); empty without a usable reference."""
    confusion = reference_confusion(conn, ctx)
    if confusion is None:
        return pd.DataFrame(columns=LABEL_SHIFT_COLUMNS)
    predicted = windowed_counts(conn, PREDICTIONS, model_id=ctx.model_id, spec=spec, segment_sets=segment_sets,
                                key_columns=["pred_class"], ends=ends, bucket=ctx.bucket)
    if predicted.empty:
        return pd.DataFrame(columns=LABEL_SHIFT_COLUMNS)
    classes = list(ctx.classes)
    table = predicted.pivot_table(index=KEYS, columns="pred_class", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=classes, fill_value=0)
    counts = table.to_numpy(np.float64)  # (series windows, classes)
    n = counts.sum(axis=1)
    shares = safe_divide(counts, n[:, None])
    inverse = np.linalg.inv(confusion)
    raw = np.nan_to_num(shares) @ inverse.T  # sums to 1: C's columns do
    multinomial = np.einsum("wi,ij->wij", np.nan_to_num(shares), np.eye(len(classes))) - np.einsum(
        "wi,wj->wij", np.nan_to_num(shares), np.nan_to_num(shares))
    covariance = np.einsum("ij,wjk,lk->wil", inverse, multinomial, inverse) / np.where(n > 0, n, np.nan)[:, None, None]
    se = np.sqrt(np.clip(np.diagonal(covariance, axis1=1, axis2=2), 0.0, None))
    # no class mix gives these predicted shares under the reference's confusion structure:
    # more than chance below 0, so the change is not (only) label shift and BBSE does not hold
    infeasible = (raw < -Z_DISAGREE * se - 1e-9).any(axis=1)
    prevalence = np.clip(raw, 0.0, None)
    prevalence = safe_divide(prevalence, prevalence.sum(axis=1, keepdims=True))
    prevalence = np.where(n[:, None] > 0, prevalence, np.nan)
    precision = np.clip(safe_divide(np.diag(confusion)[None, :] * prevalence, shares), 0.0, 1.0)
    frame = pd.DataFrame({
        **{key: np.repeat(table.index.get_level_values(key).to_numpy(), len(classes)) for key in KEYS},
        "class": np.tile(classes, len(table)),
        "prevalence_bbse": prevalence.ravel(), "prevalence_bbse_se": se.ravel(), "precision_bbse": precision.ravel(),
        "n_predictions": np.repeat(n.astype(np.int64), len(classes)),
        "_infeasible": np.repeat(infeasible, len(classes)),
    })
    frame["end"] = frame["end"].astype(np.int64)
    frame = frame.merge(_cbpe(conn, ctx, spec, segment_sets, np.unique(frame["end"])), on=[*KEYS, "class"], how="left")
    frame["label_shift_warning"] = pd.Series([_warning(*values) for values in zip(
        frame["class"], frame["prevalence_bbse"], frame["prevalence_bbse_se"], frame["prevalence_cbpe"],
        frame["_infeasible"], strict=True)], dtype=object, index=frame.index)
    return frame[LABEL_SHIFT_COLUMNS]


def _cbpe(conn: Connection, ctx: ModelContext, spec: WindowSpec, segment_sets: Sequence[tuple[str, ...]],
          ends: np.ndarray) -> pd.DataFrame:
    """CBPE's prevalence (expected positives / scored) and precision per (end, series, class)."""
    columns = [*KEYS, "class", "prevalence_cbpe", "precision_cbpe"]
    found = window_estimates(conn, ctx, spec, segment_sets=segment_sets, ends=ends)
    if found is None:
        return pd.DataFrame(columns=columns)
    counts = found.counts
    return pd.DataFrame({
        "end": counts["end"].astype(np.int64), "segment": counts["segment"], "segment_value": counts["segment_value"],
        "class": found.classes.to_numpy(),
        "prevalence_cbpe": safe_divide(found.rates["support_estimated"], found.n_scored.astype(np.float64)),
        "precision_cbpe": found.rates["precision_estimated"],
    })[columns]


def _warning(name: str, bbse: float, se: float, cbpe: float, infeasible: bool = False) -> str | None:
    if not (np.isfinite(bbse) and np.isfinite(cbpe) and np.isfinite(se)):
        return None
    gap = abs(bbse - cbpe)
    if gap <= Z_DISAGREE * se or gap <= RELATIVE_DISAGREE * max(bbse, cbpe):
        return None
    text = (f"the prevalence of {name!r} from the scores (CBPE, {cbpe:.3f}) and from the predicted-class mix "
            f"(label shift, BBSE, {bbse:.3f}) disagree")
    if infeasible:
        return (f"{text}: no class mix explains the predicted-class mix under the reference's confusion matrix, "
                "so this is not label shift alone and BBSE does not hold (CBPE does if only the inputs moved)")
    return f"{text}: the class mix or P(class | score) has changed"
