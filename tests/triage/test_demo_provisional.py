"""`monitor demo` shows a provisional window: its label backlog (the labels of the last two days
before the history's end arrive minutes after the start) leaves the newest complete window
with fewer labels than windows of its age usually have; the window ending after the clock is
never the one shown."""

from __future__ import annotations

from pathlib import Path

from monitor.config import load_config
from monitor.demo import prepare
from monitor.read import quality, windows
from monitor.read.context import stored_context
from monitor.store.db import make_engine
from monitor.tick import run_tick
from monitor.timeutil import now_epoch

DAY = 86400


def test_the_demo_starts_with_a_provisional_newest_window(tmp_path: Path) -> None:
    now = now_epoch()
    config = load_config(prepare(tmp_path / "demo", days=14, port=8050, now=now))
    engine = make_engine(config.database_url)
    try:
        run_tick(engine, config, as_of=now, notify=False)
        with engine.connect() as conn:
            ctx = stored_context(conn, config.models[0])
            assert ctx is not None
            spec = windows.default_spec(conn, ctx, window=7 * DAY, step=DAY, span_days=14, now=now)
            assert spec is not None and spec.end is not None and spec.end <= now
            frame = quality.metrics(conn, ctx, windows.latest_spec(spec, steps=3), segment="*", as_of=now)
    finally:
        engine.dispose()
    newest = frame[frame["end"] == frame["end"].max()]
    assert newest["provisional"].all() and not newest["partial"].any()
    assert not frame["provisional"].all()  # older windows are mature
