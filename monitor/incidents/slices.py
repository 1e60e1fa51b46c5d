"""Root-cause localisation on the count cube: the worst slices of one class's recall in one
window, ranked by attributed drop (docs/incidents.md).

Confusion counts are kept per finest slice (one combination of every segment value), so a
slice over any attribute combination is a SUM of finest slices: one read of the window's
counts per slice id, then a membership matrix (slices x finest slices) and matrix products.
A slice's expected true positives sum its finest slices' reference recall (shrunk toward the
overall one) times their current positives; its attributed drop is the excess of false
negatives, `expected - tp`. The search (HotSpot/Squeeze style, greedy on the residual) takes
the slice with the strongest significant drop that carries more of the drop than of the
positives (`lift`, our form of Adtributor's surprise) and is worse than the rest, keeps the
parent unless narrowing to a child is warranted (the ripple effect: a fault in a slice drops
all its children), removes its rows and looks again. Slices with fewer than
`min_support` labelled positives are neither reported nor expanded (SliceLine's support
pruning), so the search stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import cast

import numpy as np
import pandas as pd
from scipy.stats import norm
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.rates import wilson_interval
from monitor.stats import benjamini_hochberg, exact_below
from monitor.store.models import ConfusionCount, ReferenceCount, Slice, SliceValue
from monitor.store.slices import OVERALL, SEPARATOR, series_sums
from monitor.store.windows import WindowSpec, windowed_counts
from monitor.timeutil import format_duration, parse_time, to_iso

CONFUSION = cast(Table, ConfusionCount.__table__)
REFERENCE_COUNTS = cast(Table, ReferenceCount.__table__)
KEYS = ["slice_id", "true_class", "pred_class"]
SLICE_COLUMNS = ["model", "window", "end", "class", "rank", "segment", "segment_value", "depth", "status",
                 "support", "tp", "recall", "recall_low", "recall_high", "reference_recall", "excess_fn",
                 "share", "lift", "explained_by"]
MIN_SUPPORT = 10  # labelled positives below which a slice is not scored nor expanded
EXPLAINS = 0.6  # a child must carry this share of its parent's excess to replace it ...
CHILD_LIFT = 1.25  # ... and more than its share of the parent's positives
OCCAM = 0.1  # candidates within this share of the best score: fewest attributes first
CAUSE_LIFT = 1.5  # a cause carries clearly more of the overall drop than of the positives
MAX_CAUSES = 3  # "a small set": at most this many causes explain the overall drop
MAX_DEPTH = 3
FDR = 0.05  # false discovery rate over the slices searched (Benjamini-Hochberg)
PRIOR = 20  # pseudo-positives at the overall reference recall added to each slice's reference
Key = tuple[tuple[str, str], ...]  # ((attribute, value), ...) in segment order; () = overall
Counts = tuple[np.ndarray, np.ndarray, np.ndarray]  # (support, tp, expected tp) of every slice


def slices_frame(conn: Connection, ctx: ModelContext, *, cls: str, end: int, window: int, depth: int = 2,
                 min_support: int = MIN_SUPPORT, limit: int | None = None) -> pd.DataFrame:
    """`slices` records (docs/contract.md): the overall row first (its `status` says whether
    the drop is `explained` by a few slices, `global` or `no_drop`), then the slices with an
    excess of false negatives, causes first, by excess. Empty without counts or reference."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be 1 to {MAX_DEPTH}, got {depth}")
    if ctx.classes and cls not in ctx.classes:
        raise ValueError(f"unknown class {cls!r} (known: {', '.join(ctx.classes)})")
    cube = _cube(conn, ctx, cls, end, window)
    if cube.empty or not cube["support"].sum():
        return pd.DataFrame(columns=SLICE_COLUMNS)
    keys, member = _enumerate(cube, list(ctx.segments), depth, min_support)
    return _records(_search(keys, member, cube, min_support), ctx, cls, end, window, limit)


def _cube(conn: Connection, ctx: ModelContext, cls: str, end: int, window: int) -> pd.DataFrame:
    """Per finest slice with labelled positives of `cls` in [end - window, end): `support`,
    `tp`, `expected` (true positives at the slice's reference recall) and one column per
    segment attribute. Empty without a reference (nothing to compare with)."""
    current = _positives(windowed_counts(
        conn, CONFUSION, model_id=ctx.model_id, spec=WindowSpec(window=window, step=window), segment_sets=[()],
        key_columns=KEYS, ends=np.array([end]), bucket=ctx.bucket), cls)
    reference = _positives(_reference_cells(conn, ctx), cls)
    if current.empty or reference.empty or not reference["support"].sum():
        return pd.DataFrame()
    overall = reference["tp"].sum() / reference["support"].sum()
    reference = reference.set_index("slice_id").reindex(current["slice_id"], fill_value=0)
    # the slice's own reference recall, shrunk toward the overall one (PRIOR pseudo-positives):
    # a slice the reference barely saw is judged against the model's recall, not its noise
    recall = (reference["tp"].to_numpy() + PRIOR * overall) / (reference["support"].to_numpy() + PRIOR)
    current["expected"] = current["support"].to_numpy() * recall
    # the window's recent half, where a fault that began inside the window shows undiluted
    half = max(ctx.bucket, window // 2 // ctx.bucket * ctx.bucket)
    recent = _positives(windowed_counts(
        conn, CONFUSION, model_id=ctx.model_id, spec=WindowSpec(window=half, step=half), segment_sets=[()],
        key_columns=KEYS, ends=np.array([end]), bucket=ctx.bucket), cls).set_index("slice_id")
    recent = recent.reindex(current["slice_id"], fill_value=0)
    current["recent_support"] = recent["support"].to_numpy()
    current["recent_tp"] = recent["tp"].to_numpy()
    current["recent_expected"] = current["recent_support"].to_numpy() * recall
    return current.merge(_slice_values(conn, ctx), on="slice_id", how="left").fillna(
        {s: "(missing)" for s in ctx.segments})


def _reference_cells(conn: Connection, ctx: ModelContext) -> pd.DataFrame:
    """Reference confusion counts per slice: the reference file's, or with
    `reference_period` the production counts of that period (as `reference_metrics`)."""
    if ctx.config.reference_period:
        start, end = (parse_time(v) for v in ctx.config.reference_period)
        return windowed_counts(conn, CONFUSION, model_id=ctx.model_id, spec=WindowSpec(end - start, end - start),
                               segment_sets=[()], key_columns=KEYS, ends=np.array([end]))
    return series_sums(conn, REFERENCE_COUNTS, model_id=ctx.model_id, attributes=(), key_columns=KEYS)


def _positives(cells: pd.DataFrame, cls: str) -> pd.DataFrame:
    """Labelled positives (`support`) and true positives of `cls` per slice id."""
    cells = cells[cells["true_class"] == cls] if len(cells) else cells
    if cells.empty:
        return pd.DataFrame(columns=["slice_id", "support", "tp"])
    n = cells["n"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame({"slice_id": cells["slice_id"].to_numpy(dtype=np.int64), "support": n,
                          "tp": np.where(cells["pred_class"].to_numpy() == cls, n, 0)})
    return frame.groupby("slice_id", as_index=False).sum()


def _slice_values(conn: Connection, ctx: ModelContext) -> pd.DataFrame:
    rows = conn.execute(select(SliceValue.slice_id, SliceValue.attribute, SliceValue.value)
                        .join(Slice, Slice.id == SliceValue.slice_id)
                        .where(Slice.model_id == ctx.model_id)).all()
    frame = pd.DataFrame(rows, columns=["slice_id", "attribute", "value"])
    wide = frame.pivot(index="slice_id", columns="attribute", values="value") if len(frame) else pd.DataFrame()
    wide = wide.reindex(columns=list(ctx.segments))
    wide.index = wide.index.astype(np.int64) if len(wide) else wide.index
    return wide.rename_axis(None, axis=1).reset_index(names="slice_id")


def _enumerate(cube: pd.DataFrame, attributes: Sequence[str], depth: int,
               min_support: int) -> tuple[list[Key], np.ndarray]:
    """(keys, membership: slices x finest slices) of every slice with >= min_support
    positives, overall first (key ()). A slice of depth k is kept only when all its depth
    k-1 parents were (support pruning: a slice has at most its parents' positives)."""
    support = cube["support"].to_numpy(dtype=np.int64)
    keys: list[Key] = [()]
    rows: list[np.ndarray] = [np.ones(len(cube), dtype=bool)]
    kept: set[Key] = {()}
    for level in range(1, min(depth, len(attributes)) + 1):
        found = set()
        for combo in combinations(attributes, level):
            codes, uniques = pd.MultiIndex.from_frame(cube[list(combo)].astype(str)).factorize()
            sums = np.bincount(codes, weights=support, minlength=len(uniques))
            for code, values in enumerate(uniques):
                key = tuple(zip(combo, values, strict=True))
                if sums[code] < min_support or not all(parent in kept for parent in _parents(key)):
                    continue
                found.add(key)
                keys.append(key)
                rows.append(codes == code)
        kept |= found
    return keys, np.vstack(rows)


def _parents(key: Key) -> list[Key]:
    return [key[:i] + key[i + 1:] for i in range(len(key))]


class _Search:
    """Counts of every slice over the finest slices still `active` (those no cause took)."""

    def __init__(self, keys: list[Key], member: np.ndarray, cube: pd.DataFrame, min_support: int) -> None:
        self.keys, self.member, self.min_support = keys, member.astype(np.float64), min_support
        self.cells = cube[["support", "tp", "expected"]].to_numpy(dtype=np.float64)
        self.recent_cells = cube[["recent_support", "recent_tp", "recent_expected"]].to_numpy(dtype=np.float64)
        index = {key: i for i, key in enumerate(keys)}
        self.children: dict[int, list[int]] = {}
        self.parents: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            for parent in _parents(key):
                self.children.setdefault(index[parent], []).append(i)
                if parent:
                    self.parents.setdefault(i, []).append(index[parent])

    def counts(self, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(support, tp, expected tp) of every slice, summed over the active finest slices."""
        sums = self.member @ (self.cells * active[:, None])
        return sums[:, 0], sums[:, 1], sums[:, 2]

    def recent(self, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same over the window's recent half."""
        sums = self.member @ (self.recent_cells * active[:, None])
        return sums[:, 0], sums[:, 1], sums[:, 2]

    def significant(self, support: np.ndarray, tp: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Recall significantly below the reference recall: the exact one-sided binomial
        p-value, BH-adjusted over the slices with enough positives, at most FDR."""
        tested = support >= self.min_support
        with np.errstate(divide="ignore", invalid="ignore"):
            p_values = np.where(tested, exact_below(tp, support, expected / support), np.nan)
        q_values = benjamini_hochberg(p_values)
        return tested & (np.nan_to_num(q_values, nan=1.0) <= FDR)

    def narrows(self, parent: int, children: list[int], counts: Counts, recent: Counts) -> list[int]:
        """The children of `parent` that may replace it (docs/incidents.md, "narrowing"):
        `counts` and `recent` are (support, tp, expected) of every slice over the window and
        its recent half. The parent is kept (Occam) unless a child carries most of its excess
        (EXPLAINS) with more than its share of its positives (CHILD_LIFT), and, over the window
        and over its recent half (where a fault that began inside the window shows undiluted):
        - the child is significantly worse than the rest of the parent, relative to their
          references (a two-sample likelihood-ratio test: the rest's recall is estimated, not
          taken as known; one-sided, BH over the tests of the children asked about);
        - a fault in the child alone fits the parent's counts better than a fault in the whole
          parent (`_child_alone`: the ripple effect decides). A rest too small to test keeps
          the parent; an empty recent half is not tested."""
        support, tp, expected = counts
        excess = expected - tp
        if excess[parent] <= 0:
            return []
        asked = np.array([child for child in children
                          if excess[child] >= EXPLAINS * excess[parent]
                          and (excess[child] / excess[parent]) / (support[child] / support[parent]) >= CHILD_LIFT],
                         dtype=np.int64)
        if not len(asked):
            return []
        rest, rest_expected = support[parent] - support[asked], expected[parent] - expected[asked]
        testable = (rest >= self.min_support) & (rest_expected > 0)
        late, late_tp, late_expected = (part[parent] - part[asked] for part in recent)
        child_late, child_late_tp, child_late_expected = (part[asked] for part in recent)
        late_testable = (late > 0) & (late_expected > 0) & (child_late > 0)
        whole = _child_alone((support[asked], tp[asked], expected[asked]),
                             (rest, tp[parent] - tp[asked], rest_expected))
        half = _child_alone((child_late, child_late_tp, child_late_expected), (late, late_tp, late_expected))
        p_values = benjamini_hochberg(np.concatenate([np.where(testable, whole[0], np.nan),
                                                      np.where(late_testable, half[0], np.nan)]))
        worse, late_worse = (np.nan_to_num(p_values, nan=1.0) <= FDR).reshape(2, -1)
        keep = testable & worse & whole[1] & ((late_worse & half[1]) | ~late_testable)
        return [int(child) for child in asked[keep]]

    def next_cause(self, active: np.ndarray) -> int | None:
        """The candidate with the largest score, fewest attributes first among those within
        OCCAM of it, moved to a parent unless narrowing to it is warranted (`narrows`: else
        it is a ripple of a fault in the parent), then narrowed to a child only when that is
        warranted; None when no slice stands out. A candidate carries
        clearly more of the remaining drop than of the positives (lift), is significantly
        worse than the rest of the data (surprise), and a fault in it alone fits the counts
        better than a ripple of a drop of all the data (`_child_alone`)."""
        support, tp, expected = counts = self.counts(active)
        recent = self.recent(active)
        excess = expected - tp
        significant = self.significant(support, tp, expected)
        with np.errstate(divide="ignore", invalid="ignore"):
            # without an overall excess a significant, surprising slice is a cause on its own
            # (a failing intersection that leaves the overall recall inside its interval)
            lift = (excess / excess[0]) / (support / support[0]) if excess[0] > 0 else np.full(len(excess), np.inf)
            # surprise: worse than the rest of the data, at the rest's recall relative to its
            # reference applied to the slice's reference (exact one-sided test, BH)
            rest_ratio = np.clip((tp[0] - tp) / (expected[0] - expected), 0.0, None)
            level = np.where(expected[0] - expected > 0, rest_ratio * expected / support, np.nan)
            p_values = np.where(support >= self.min_support, exact_below(tp, support, np.clip(level, 0, 1)), np.nan)
            # score: the Pearson chi-square term of the deviation (a large drop in few rows
            # beats the same excess diluted in many)
            score = excess * excess / expected
        surprise = np.nan_to_num(benjamini_hochberg(p_values), nan=1.0) <= FDR
        # a parent the best candidate gives way to needs a significant drop and lift, not its
        # own surprise: it holds the surprising child, and the narrowing test decides
        plausible = significant & (lift >= CAUSE_LIFT) & (excess > 0)
        plausible[0] = False
        # a fault in the slice alone (the rest of the data at its reference) must fit better
        # than a drop of the whole data that the slice shows with the rest (a global shift
        # ripples into every slice; early on, one of them looks worst by chance): over the
        # window and over its recent half, where that half has positives in both
        alone = _child_alone(counts, tuple(part[0] - part for part in counts))[1]
        late = _child_alone(recent, tuple(part[0] - part for part in recent))[1]
        late_testable = (recent[0] > 0) & (recent[0][0] - recent[0] > 0)
        candidate = plausible & surprise & alone & (late | ~late_testable)
        if not candidate.any():
            return None
        # the best score; within OCCAM of it, fewer attributes first (Occam), then the score
        pool = np.flatnonzero(candidate & (score >= (1 - OCCAM) * score[candidate].max()))
        best = int(min(pool, key=lambda i: (len(self.keys[i]), -score[i])))
        while True:  # a slice that does not explain its parent's drop gives way to the parent
            wider = [parent for parent in self.parents.get(best, [])
                     if plausible[parent] and best not in self.narrows(parent, [best], counts, recent)]
            if not wider:
                break
            best = max(wider, key=lambda parent: excess[parent])
        while True:  # narrow while a child is warranted
            better = self.narrows(best, [c for c in self.children.get(best, []) if candidate[c]], counts, recent)
            if not better:
                return best
            best = max(better, key=lambda child: excess[child])


def _loglik(tp: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood of `tp` successes in `n` at rate `p` (without the constant)."""
    p = np.clip(np.nan_to_num(p, nan=0.5), 1e-9, 1 - 1e-9)
    return tp * np.log(p) + (n - tp) * np.log1p(-p)


def _child_alone(child: Counts, others: Counts) -> tuple[np.ndarray, np.ndarray]:
    """(p-value, prefer) for children against the rest of their parent, each as (support, tp,
    expected tp at the reference recall). Three binomial models of the two parts' recall:
    `ripple`, one ratio to the reference for both (a fault in the whole parent drops every
    child alike: HotSpot's ripple effect); `alone`, the child at its own recall and the rest
    at its reference (a fault in the child only); `free`, each part at its own recall. The
    p-value is the one-sided likelihood-ratio test of `free` against `ripple` (the child worse
    than the rest: signed root of the deviance, normal tail); `prefer` says that `alone` fits
    better than `ripple`. Both have one free parameter, so their likelihoods compare directly."""
    (n, tp, expected), (rest, rest_tp, rest_expected) = child, others
    with np.errstate(divide="ignore", invalid="ignore"):
        reference, rest_reference = expected / n, rest_expected / rest
        ratio = (tp + rest_tp) / (expected + rest_expected)
        own, rest_own = tp / n, rest_tp / rest
        ripple = _loglik(tp, n, ratio * reference) + _loglik(rest_tp, rest, ratio * rest_reference)
        alone = _loglik(tp, n, own) + _loglik(rest_tp, rest, rest_reference)
        free = _loglik(tp, n, own) + _loglik(rest_tp, rest, rest_own)
        root = np.sqrt(np.clip(2 * (free - ripple), 0.0, None))
        signed = np.where(tp / expected < rest_tp / rest_expected, root, -root)
    p_value = norm.sf(np.nan_to_num(signed, nan=-np.inf))
    return p_value, np.nan_to_num(alone - ripple, nan=-np.inf) > 0


def _search(keys: list[Key], member: np.ndarray, cube: pd.DataFrame, min_support: int) -> pd.DataFrame:
    """Greedy residual search (HotSpot/Squeeze): take the best cause, remove its rows, look
    again on the rest, up to MAX_CAUSES. A slice whose drop is gone once the causes are
    removed is `explained` by the causes it overlaps; one still below the reference is a
    `drop`; `weak` when the drop is not significant (BH over the slices). The overall row says whether
    the causes explain the drop (`explained`), not (`global`), or there is none (`no_drop`)."""
    search = _Search(keys, member, cube, min_support)
    active = np.ones(len(cube), dtype=bool)
    causes: list[int] = []
    while len(causes) < MAX_CAUSES and (cause := search.next_cause(active)) is not None:
        causes.append(cause)
        active &= ~member[cause]
    support, tp, expected = search.counts(np.ones(len(cube), dtype=bool))
    before = search.significant(support, tp, expected)
    after = search.significant(*search.counts(active))
    low, high = wilson_interval(tp, support)
    excess = expected - tp
    names = [_name(key) for key in keys]
    status = np.where(before & after, "drop", np.where(before, "explained", "weak")).astype(object)
    explained_by: list[str | None] = [None] * len(keys)
    for i in np.flatnonzero(before & ~after):
        explained_by[i] = "; ".join(names[c] for c in causes if (member[i] & member[c]).any()) or None
    for c in causes:
        status[c], explained_by[c] = "cause", None
    status[0] = "no_drop" if not before[0] else "explained" if causes and not after[0] else "global"
    explained_by[0] = "; ".join(names[c] for c in causes) if status[0] == "explained" else None
    share = excess / excess[0] if excess[0] > 0 else np.full(len(keys), np.nan)
    order = np.full(len(keys), len(causes), dtype=np.int64)
    order[causes] = np.arange(len(causes))
    return pd.DataFrame({
        "key": keys, "depth": [len(key) for key in keys], "support": support.astype(np.int64),
        "tp": tp.astype(np.int64), "recall": tp / support, "recall_low": low, "recall_high": high,
        "reference_recall": expected / support, "excess_fn": excess, "share": share,
        "lift": share / (support / support[0]), "status": status, "explained_by": explained_by,
        "cause_order": order})


def _name(key: Key) -> str:
    return "*" if not key else f"{_segment(key)}={_value(key)}"


def _segment(key: Key) -> str:
    return SEPARATOR.join(a for a, _ in key) if key else OVERALL


def _value(key: Key) -> str:
    return SEPARATOR.join(v for _, v in key) if key else OVERALL


def _records(scored: pd.DataFrame, ctx: ModelContext, cls: str, end: int, window: int,
             limit: int | None) -> pd.DataFrame:
    """Overall first, then slices with an excess: causes, then by excess (most specific first
    on ties), explained parents after the slices that explain them."""
    rest = scored.iloc[1:]
    rest = rest[rest["excess_fn"] > 0]
    order = np.lexsort((-rest["depth"].to_numpy(), -rest["excess_fn"].to_numpy(),
                        rest["cause_order"].to_numpy()))
    rest = rest.iloc[order]
    if limit is not None:
        rest = rest.iloc[:limit]
    frame = pd.concat([scored.iloc[:1], rest], ignore_index=True)
    frame["segment"] = [_segment(key) for key in frame["key"]]
    frame["segment_value"] = [_value(key) for key in frame["key"]]
    frame = frame.assign(model=ctx.name, window=format_duration(window), end=to_iso(end), **{"class": cls},
                         rank=np.arange(len(frame), dtype=np.int64))
    return frame[SLICE_COLUMNS].reset_index(drop=True)
