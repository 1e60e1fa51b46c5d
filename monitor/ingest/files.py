"""Loading many small files at once: the records of a batch of files are validated, deduplicated
and stored in one pass per batch (one validation per group of files with the same columns and
dtypes, one id lookup, one slice lookup, one insert), not once per file, whose fixed pandas
and SQL cost per operation dominated small files (issue 15).

The outcome is the one reading the files one after the other gives (`pipeline.load_predictions`
and `load_labels` per file, in order), file by file: the same rows stored with the same file
ids, the same accepted/skipped/rejected/waiting counts and rejects (rows, fields, reasons) per
file, the same rows handed to the aggregation (`Pending`), in file order. A duplicate id across
files of the batch is judged as if the earlier file were stored already: a prediction against
the first one; a label by the sequence of its files (the newest label wins; an equal or older
one is skipped), as successive reads would. tests/throughput/test_batched_files.py compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext
from monitor.estimation.aggregate import kept_scores
from monitor.ingest.batch import Pending
from monitor.ingest.pipeline import (
    LABELS,
    PREDICTIONS,
    IngestResult,
    _conflict_rejects,
    _content_hash,
    _existing,
    store_corrections,
    store_new_labels,
)
from monitor.ingest.slices import slice_ids
from monitor.ingest.validate import REJECT_COLUMNS, Validated, validate_labels, validate_predictions
from monitor.store.bulk import insert_frame
from monitor.timeutil import now_epoch

EARLIER_IN_BATCH = "conflicting duplicate prediction (same id, other content, earlier in the batch)"
ALREADY_INGESTED = "conflicting duplicate prediction (same id, other content, already ingested)"


@dataclass
class _Group:
    """Files' records with the same columns and dtypes, validated together."""

    validated: Validated
    files: np.ndarray  # the file (index in the batch) of every input row
    raw_rows: int


def _validated_groups(frames: list[pd.DataFrame], validate) -> list[_Group]:  # type: ignore[no-untyped-def]
    by_signature: dict[tuple, list[int]] = {}
    for index, frame in enumerate(frames):
        if len(frame):
            key = tuple(zip(frame.columns, map(str, frame.dtypes), strict=True))
            by_signature.setdefault(key, []).append(index)
    groups = []
    for members in by_signature.values():
        parts = [frames[i] for i in members]
        raw = parts[0].reset_index(drop=True) if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        files = np.repeat(np.asarray(members, dtype=np.int64), [len(p) for p in parts])
        groups.append(_Group(validate(raw), files, len(raw)))
    return groups


def _results(frames: list[pd.DataFrame]) -> list[IngestResult]:
    return [IngestResult(read=len(frame)) for frame in frames]


def _waiting(results: list[IngestResult], files: np.ndarray, times: np.ndarray, later: np.ndarray) -> None:
    if not later.any():
        return
    late = pd.DataFrame({"file": files[later], "ts": times[later]}).groupby("file")["ts"].agg(["size", "min"])
    for file, (size, first) in zip(late.index, late.to_numpy(), strict=True):
        results[int(file)].waiting += int(size)
        results[int(file)].next_visible = int(first)


def _add_rejects(parts: list[list[pd.DataFrame]], files: np.ndarray, rejects: pd.DataFrame) -> None:
    """Split `rejects` (rows of files `files`, in order) by file, keeping their order."""
    if not len(rejects):
        return
    for file in pd.unique(files):
        parts[int(file)].append(rejects.loc[files == file].reset_index(drop=True))


def _finish(results: list[IngestResult], parts: list[list[pd.DataFrame]]) -> list[IngestResult]:
    for result, found in zip(results, parts, strict=True):
        found = [f for f in found if len(f)]
        if found:
            result.rejects = found[0] if len(found) == 1 else pd.concat(found, ignore_index=True)
            result.rejected = len(result.rejects)
    return results


def _core(groups: list[_Group], columns: list[str]) -> pd.DataFrame:
    """The groups' good rows (canonical `columns`, `_file`, and where each row is: `_group`,
    `_at` its position in the group's rows), in file and row order."""
    parts = []
    for number, group in enumerate(groups):
        rows = group.validated.rows
        part = rows[columns].reset_index(drop=True)
        part["_file"] = group.files[rows.index.to_numpy()]
        part["_group"] = number
        part["_at"] = np.arange(len(rows))
        parts.append(part)
    core = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return core.sort_values(["_file", "_row"], kind="stable").reset_index(drop=True)


def load_prediction_files(conn: Connection, ctx: ModelContext, frames: list[pd.DataFrame], file_ids: list[int],
                          *, as_of: int | None, pending: Pending) -> list[IngestResult]:
    """Validate and store the raw records of a batch of files (one frame per file, with
    `_row`); their counts and hooks wait in `pending`. One IngestResult per file."""
    results = _results(frames)
    parts: list[list[pd.DataFrame]] = [[] for _ in frames]
    groups = _validated_groups(frames, lambda raw: validate_predictions(raw, ctx))
    for group in groups:
        positions = group.validated.positions
        assert positions is not None
        _add_rejects(parts, group.files[positions], group.validated.rejects)
    groups = [g for g in groups if len(g.validated.rows)]
    if not groups:
        return _finish(results, parts)
    core = _core(groups, ["prediction_id", "ts", "predicted", "model_version", *ctx.segments, "_row"])
    files = core["_file"].to_numpy()
    if as_of is not None:
        later = core["ts"].to_numpy() > as_of
        _waiting(results, files, core["ts"].to_numpy(), later)
        core = core.loc[~later].reset_index(drop=True)
    core["content_hash"] = _content_hash(core, ctx).to_numpy()
    # duplicates inside a file: identical ones are skipped, conflicting ones rejected
    first = ~core.duplicated(["_file", "prediction_id"], keep="first").to_numpy()
    same = core.duplicated(["_file", "prediction_id", "content_hash"], keep="first").to_numpy()
    _count(results, core["_file"].to_numpy()[same], "skipped")
    earlier = core.loc[~first & ~same]
    if len(earlier):
        _add_rejects(parts, earlier["_file"].to_numpy(),
                     _conflict_rejects(earlier, ctx.config.predictions.id, EARLIER_IN_BATCH))
    core = core.loc[first].reset_index(drop=True)
    # an id stored already, or of an earlier file of the batch (stored by then, as successive
    # reads see it): skipped when identical, else rejected
    stored = _existing(conn, PREDICTIONS, ctx.model_id, core["prediction_id"], ["content_hash"])
    is_stored = core["prediction_id"].isin(stored["prediction_id"]).to_numpy() if len(stored) else (
        np.zeros(len(core), dtype=bool))
    first_of_id = ~core.duplicated("prediction_id", keep="first").to_numpy()
    known = is_stored | ~first_of_id
    differs = np.zeros(len(core), dtype=bool)
    if known.any():
        ids = core["prediction_id"]
        hashes = core["content_hash"].to_numpy()
        batch_hash = pd.Series(hashes[first_of_id], index=ids[first_of_id].to_numpy())
        reference = ids.map(batch_hash).to_numpy(dtype=np.int64, copy=True)
        if is_stored.any():
            stored_hash = pd.Series(stored["content_hash"].to_numpy(dtype=np.int64),
                                    index=stored["prediction_id"].to_numpy())
            reference[is_stored] = ids[is_stored].map(stored_hash).to_numpy(dtype=np.int64)
        differs = known & (reference != hashes)
        conflicts = core.loc[differs]
        if len(conflicts):
            _add_rejects(parts, conflicts["_file"].to_numpy(),
                         _conflict_rejects(conflicts, ctx.config.predictions.id, ALREADY_INGESTED))
        _count(results, core["_file"].to_numpy()[known & ~differs], "skipped")
    new = core.loc[~known].reset_index(drop=True)
    if new.empty:
        return _finish(results, parts)
    new["slice_id"] = slice_ids(conn, ctx, new).to_numpy()
    new["bucket_start"] = new["ts"] - new["ts"] % ctx.bucket
    stored_rows = pd.DataFrame({
        "model_id": ctx.model_id, "prediction_id": new["prediction_id"], "ts": new["ts"],
        "bucket_start": new["bucket_start"], "slice_id": new["slice_id"], "predicted": new["predicted"],
        "model_version": new["model_version"].astype(object), "content_hash": new["content_hash"],
        "file_id": np.asarray(file_ids, dtype=np.int64)[new["_file"].to_numpy()],
    })
    # the accepted rows with their slices to the aggregation, a frame per group (its files in
    # order: `Pending` concatenates the frames of the same columns, in file order either way),
    # and their kept scores (a group's score columns are its own) to the insert
    accepted_groups = []
    scores: np.ndarray | None = None
    for number, members in sorted(new.groupby("_group").indices.items(), key=lambda item: item[1][0]):
        rows = groups[int(number)].validated.rows
        picked = new.iloc[members]
        accepted = rows.iloc[picked["_at"].to_numpy()]
        accepted = accepted.assign(slice_id=picked["slice_id"].to_numpy(),
                                   bucket_start=picked["bucket_start"].to_numpy())
        kept = kept_scores(ctx, accepted)
        if kept is not None:
            if scores is None:
                scores = np.full(len(new), None, dtype=object)
            scores[members] = kept
        accepted_groups.append(accepted)
    if scores is not None:
        stored_rows["scores"] = scores
    insert_frame(conn, PREDICTIONS, stored_rows)
    _count(results, new["_file"].to_numpy(), "accepted")
    for accepted in accepted_groups:
        pending.add_predictions(accepted.drop(columns=["_row"]).reset_index(drop=True))
    return _finish(results, parts)


def _count(results: list[IngestResult], files: np.ndarray, what: str | None) -> None:
    if what is None or not len(files):
        return
    counts = np.bincount(files, minlength=len(results))
    for file in np.flatnonzero(counts):
        setattr(results[file], what, getattr(results[file], what) + int(counts[file]))


def load_label_files(conn: Connection, ctx: ModelContext, frames: list[pd.DataFrame], file_ids: list[int],
                     *, as_of: int | None, pending: Pending) -> list[IngestResult]:
    """Validate and store the label records of a batch of files; labels applied on the spot
    wait in `pending` for the batch's counts. One IngestResult per file."""
    results = _results(frames)
    parts: list[list[pd.DataFrame]] = [[] for _ in frames]
    if not any(len(frame) for frame in frames):
        return results
    default_ts = as_of if as_of is not None else now_epoch()
    groups = _validated_groups(frames, lambda raw: validate_labels(raw, ctx, default_ts))
    for group in groups:
        positions = group.validated.positions
        assert positions is not None
        _add_rejects(parts, group.files[positions], group.validated.rejects)
    groups = [g for g in groups if len(g.validated.rows)]
    if not groups:
        pending.add_direct(pd.DataFrame())
        return _finish(results, parts)
    core = _core(groups, ["prediction_id", "label", "label_ts", "_row"])
    if as_of is not None:
        later = core["label_ts"].to_numpy() > as_of
        _waiting(results, core["_file"].to_numpy(), core["label_ts"].to_numpy(), later)
        core = core.loc[~later]
    # per file, the newest label of an id wins (a correction); ties: the later row
    core = core.sort_values(["_file", "label_ts", "_row"], kind="stable")
    newest = core.drop_duplicates(["_file", "prediction_id"], keep="last").reset_index(drop=True)
    older = np.bincount(core["_file"].to_numpy(), minlength=len(frames)) - np.bincount(
        newest["_file"].to_numpy(), minlength=len(frames))
    for file in np.flatnonzero(older):
        results[file].skipped += int(older[file])
    stored = _existing(conn, LABELS, ctx.model_id, newest["prediction_id"], ["label", "label_ts"])
    state: dict[str, tuple[str, int]] = (
        {p: (lab, int(t)) for p, lab, t in zip(stored["prediction_id"], stored["label"], stored["label_ts"],
                                               strict=True)} if len(stored) else {})
    ids = newest["prediction_id"].tolist()
    # an id once in the batch and not stored is new, whatever the order: only the others are
    # judged one by one (a backfill's 900,000 labels took 0.5 s in that loop)
    simple = ~newest["prediction_id"].duplicated(keep=False).to_numpy()
    if state:
        simple &= np.fromiter((pid not in state for pid in ids), dtype=bool, count=len(ids))
    fresh_at: list[int] = np.flatnonzero(simple).tolist()
    corrections: list[int] = []
    skipped: list[int] = []
    others = np.flatnonzero(~simple)
    labels, times = newest["label"].to_numpy()[others].tolist(), newest["label_ts"].to_numpy()[others].tolist()
    # judged in file order, as successive reads would: new, a correction (another label, not
    # older than the one stored), or skipped
    for at, label, ts in zip(others.tolist(), labels, times, strict=True):
        pid = ids[at]
        before = state.get(pid)
        if before is None:
            fresh_at.append(at)
        elif label != before[0] and ts >= before[1]:
            corrections.append(at)
        else:
            skipped.append(at)
            continue
        state[pid] = (label, ts)
    files = newest["_file"].to_numpy()
    _count(results, files[skipped], "skipped")
    fresh_at.sort()
    fresh = newest.iloc[fresh_at].reset_index(drop=True)
    direct = store_new_labels(conn, ctx, fresh, np.asarray(file_ids, dtype=np.int64)[fresh["_file"].to_numpy()],
                              pending.recent)
    store_corrections(conn, ctx, newest.iloc[corrections])
    _count(results, files[fresh_at + corrections], "accepted")
    pending.add_direct(direct)
    return _finish(results, parts)


__all__ = ["REJECT_COLUMNS", "load_label_files", "load_prediction_files"]
