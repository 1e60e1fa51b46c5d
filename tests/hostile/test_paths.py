"""Hostile paths: a file that cannot be stat'ed, opened or named, or that a reader chokes on,
fails by itself (recorded, said once) while every other file of its batch goes in; a small
compressed file that holds millions of rows is loaded in chunks, not held whole.
"""

from __future__ import annotations

import gzip
import logging
import os

import pandas as pd
import pytest
from sqlalchemy import select

import monitor.ingest.ledger as ledger
from monitor.config import load_config
from monitor.store.db import make_engine
from monitor.store.models import IngestedFile
from tests.hostile.workspace import (
    HEADER,
    assert_counted_exactly,
    csv_lines,
    good_rows,
    tick,
    workspace,
)


def _write(path, frame) -> None:  # type: ignore[no-untyped-def]
    path.write_text(HEADER + "\n" + "\n".join(csv_lines(frame)) + "\n")


def _ledger(config_path) -> dict[str, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    engine = make_engine(load_config(config_path).database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(IngestedFile.path, IngestedFile.status, IngestedFile.error)).all()
    finally:
        engine.dispose()
    return {os.path.basename(path): (status, error) for path, status, error in rows}


def test_a_symlink_loop_fails_alone_and_the_files_of_its_batch_go_in(tmp_path, db_url, caplog):
    config_path = workspace(tmp_path, db_url)
    first, last = good_rows(30, prefix="a"), good_rows(30, prefix="c")
    _write(tmp_path / "predictions" / "a.csv", first)
    os.symlink("b.csv", tmp_path / "predictions" / "b.csv")  # stat: too many levels of symbolic links
    _write(tmp_path / "predictions" / "c.csv", last)
    with caplog.at_level(logging.WARNING, logger="monitor.ingest.ledger"):
        summary = tick(config_path)
    model = summary.models[0]
    assert (model.predictions, model.files_failed) == (60, 1)
    assert any("b.csv" in error and "symbolic links" in error for error in model.errors), model.errors
    files = _ledger(config_path)
    assert files["a.csv"][0] == files["c.csv"][0] == "done"
    assert files["b.csv"][0] == "failed" and "cannot be read" in (files["b.csv"][1] or "")
    assert_counted_exactly(config_path, pd.concat([first, last], ignore_index=True))
    said = [r for r in caplog.records if "b.csv" in r.getMessage()]
    assert len(said) == 1

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monitor.ingest.ledger"):
        again = tick(config_path)  # still broken: not said again, nothing else read again
    assert (again.models[0].files_failed, again.models[0].predictions) == (0, 0)
    assert not [r for r in caplog.records if "b.csv" in r.getMessage()]


def test_a_file_that_cannot_be_opened_fails_alone(tmp_path, sqlite_url, monkeypatch):
    """No permission (as a non-root deployment meets it; root reads anything, so the error is
    raised where the ledger opens the file to fingerprint it)."""
    config_path = workspace(tmp_path, sqlite_url)
    _write(tmp_path / "predictions" / "a.csv", good_rows(20, prefix="a"))
    _write(tmp_path / "predictions" / "b.csv", good_rows(20, prefix="b"))
    real = ledger.fingerprint

    def fingerprint(path, stat):  # type: ignore[no-untyped-def]
        if path.name == "a.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, stat)

    monkeypatch.setattr(ledger, "fingerprint", fingerprint)
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].files_failed) == (20, 1)
    assert _ledger(config_path)["a.csv"] == ("failed", f"{tmp_path / 'predictions' / 'a.csv'}: cannot be read: "
                                                       "Permission denied")
    monkeypatch.setattr(ledger, "fingerprint", real)  # the permission is given: read on the next tick
    assert tick(config_path).models[0].predictions == 20


def test_an_error_no_reader_expected_is_recorded_and_not_retried_until_the_file_changes(
        tmp_path, sqlite_url, monkeypatch, caplog):
    config_path = workspace(tmp_path, sqlite_url)
    _write(tmp_path / "predictions" / "a.csv", good_rows(20, prefix="a"))
    _write(tmp_path / "predictions" / "b.csv", good_rows(20, prefix="b"))
    real = ledger.read_chunks

    def read_chunks(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path.name == "b.csv":
            raise TypeError("a reader's bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ledger, "read_chunks", read_chunks)
    summary = tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].files_failed) == (20, 1)
    status, error = _ledger(config_path)["b.csv"]
    assert status == "failed" and error is not None and error.endswith("b.csv: TypeError: a reader's bug")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = tick(config_path)
    assert (again.models[0].files_failed, again.models[0].files_read) == (0, 0)  # no traceback every tick
    assert not [r for r in caplog.records if r.exc_info]
    monkeypatch.setattr(ledger, "read_chunks", real)
    (tmp_path / "predictions" / "b.csv").write_text((tmp_path / "predictions" / "b.csv").read_text() + "\n")
    assert tick(config_path).models[0].predictions == 20  # it changed: read again


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_is_skipped_and_said_once(tmp_path, sqlite_url, caplog):
    config_path = workspace(tmp_path, sqlite_url)
    _write(tmp_path / "predictions" / "a.csv", good_rows(20, prefix="a"))
    folder = os.fsencode(tmp_path / "predictions")
    with open(folder + b"/b_\xff.csv", "w") as handle:
        handle.write(HEADER + "\n" + "\n".join(csv_lines(good_rows(5, prefix="b"))) + "\n")
    with caplog.at_level(logging.WARNING, logger="monitor.ingest.ledger"):
        summary = tick(config_path)
        tick(config_path)
    assert (summary.models[0].predictions, summary.models[0].files_failed) == (20, 0)
    said = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(said) == 1 and "b_\\xff.csv" in said[0], said


def test_a_small_compressed_file_with_more_rows_than_a_batch_is_loaded_in_chunks(
        tmp_path, sqlite_url, monkeypatch):
    """Few bytes on disk, many rows: it is not staged whole with the small files of its batch
    (whose reading holds every row in memory) but streamed, with its own batches' flushes."""
    config_path = workspace(tmp_path, sqlite_url)
    monkeypatch.setattr(ledger, "BATCH_ROWS", 500)
    _write(tmp_path / "predictions" / "a.csv", good_rows(30, prefix="a"))
    many = good_rows(2_000, prefix="m")
    with gzip.open(tmp_path / "predictions" / "b.csv.gz", "wt") as handle:
        handle.write(HEADER + "\n" + "\n".join(csv_lines(many)) + "\n")
    streamed = []
    real = ledger._ingest_one

    def ingest_one(*args, **kwargs):  # type: ignore[no-untyped-def]
        streamed.append((args[3].name, kwargs.get("alone", False)))
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger, "_ingest_one", ingest_one)
    summary = tick(config_path)
    assert summary.models[0].predictions == 2_030
    assert ("b.csv.gz", True) in streamed
    assert_counted_exactly(config_path, pd.concat([good_rows(30, prefix="a"), many], ignore_index=True))


def test_a_symlink_loop_under_a_recursive_glob_lists_each_file_once(tmp_path, sqlite_url):
    """`up -> ..` and `self -> ../sub` under `predictions/**/*`: glob followed them into
    endless paths (637,000 in 25 s, 1.2 GB before it was stopped); each real directory is
    walked once now, and a second way into a directory does not read its files twice."""
    import time

    config_path = workspace(tmp_path, sqlite_url)
    sub = tmp_path / "predictions" / "sub"
    sub.mkdir()
    _write(tmp_path / "predictions" / "a.csv", good_rows(10, prefix="a"))
    _write(sub / "b.csv", good_rows(10, prefix="b"))
    os.symlink("..", sub / "up")
    os.symlink("../sub", sub / "self")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write(elsewhere / "c.csv", good_rows(10, prefix="c"))
    os.symlink(elsewhere, tmp_path / "predictions" / "linked")  # a linked directory is still read
    config = load_config(config_path)
    model = config.models[0].model_copy(update={"predictions": config.models[0].predictions.model_copy(
        update={"path": "predictions/**/*.csv"})})
    from monitor.context import ModelContext

    started = time.monotonic()
    found = ledger.discover(ModelContext(config=model, model_id=1, classes=[], minority_classes=[]),
                            "predictions", config.base_dir)
    assert time.monotonic() - started < 10
    assert sorted(os.path.relpath(p, tmp_path / "predictions") for p in found) == [
        "a.csv", "linked/c.csv", "sub/b.csv"]


def test_the_recursive_walk_finds_what_glob_finds(tmp_path):
    """Without symlinks, the walk behind a `**` pattern lists exactly glob's names (hidden
    names, directories named like files, `**` at either end, relative patterns)."""
    import glob
    import random

    rng = random.Random(7)
    names = ["a", "b.csv", ".h", ".h.csv", "c.jsonl", "d", "x.csv.gz"]

    def build(folder, depth):  # type: ignore[no-untyped-def]
        for name in rng.sample(names, 4):
            path = folder / name
            if depth < 3 and rng.random() < 0.5 and not name.endswith(("csv", "jsonl", "gz")):
                path.mkdir(exist_ok=True)
                build(path, depth + 1)
            elif not path.exists():
                path.write_text("")

    build(tmp_path, 0)
    patterns = ["**/*", "**", "**/*.csv", "a/**/*.csv", "*/**/b.csv", "**/.h*", "**/d/*", "*/**",
                "**/**/*.jsonl", "[ab]*/**/*", "**/*/**"]
    for pattern in patterns:
        full = f"{tmp_path}/{pattern}"
        expected = {p.rstrip(os.sep) for p in glob.glob(full, recursive=True)} - {str(tmp_path)}
        assert set(ledger._glob(full)) == expected, pattern
    os.chdir(tmp_path)
    for pattern in ["**/*.csv", "a/**/*"]:
        assert set(ledger._glob(pattern)) == set(glob.glob(pattern, recursive=True)), pattern
