"""JSON lines: the one-pass reading of a plain block gives exactly what reading it line by line
gives (values, dtypes, columns, row numbers, rejects), and a block it cannot take whole (a bad
line, an escaped code point, NaN, nested values, huge integers, blank lines) falls back to the
line-by-line reader, so rejects stay per line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Limits
from monitor.ingest.chunks import Chunk
from monitor.ingest.jsonlines import JsonLinesReader

STRINGS = ["id", "cls", "seg"]
KEEP = {"id", "cls", "seg", "ts", "x", "y"}.__contains__
VALUES = st.one_of(
    st.sampled_from(["a1", "", " b ", "2024-01-01T00:00:00Z", "\u00e9t\u00e9", "007", "1.50"]),
    st.none(), st.booleans(), st.integers(min_value=-(2**62), max_value=2**62),
    st.sampled_from([1.5, 2.0, 0.1, 1e300, -0.0, 1704067200.0]),
)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


class LineByLine(JsonLinesReader):
    def _plain_lines(self, lines: list[bytes]) -> Chunk | None:
        return None


def _read(cls: type[JsonLinesReader], lines: list[bytes], limits: Limits) -> list[Chunk]:
    reader = cls(Path("x.jsonl"), STRINGS, KEEP, limits)
    return list(reader.chunks(iter([b"\n".join(lines) + b"\n"])))


def _same(lines: list[bytes], limits: Limits | None = None) -> None:
    limits = limits or Limits()
    fast, slow = _read(JsonLinesReader, lines, limits), _read(LineByLine, lines, limits)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
        pd.testing.assert_frame_equal(a.rejects.reset_index(drop=True), b.rejects.reset_index(drop=True),
                                      check_dtype=False)


@st.composite
def blocks(draw: st.DrawFn) -> list[bytes]:
    keys = ["id", "cls", "seg", "ts", "x", "y", "unused"]
    n = draw(st.integers(min_value=1, max_value=8))
    lines = []
    for _ in range(n):
        present = draw(st.lists(st.sampled_from(keys), unique=True, min_size=0, max_size=len(keys)))
        lines.append(json.dumps({k: draw(VALUES) for k in present}, ensure_ascii=False).encode())
    return lines


@SETTINGS
@given(blocks())
def test_plain_blocks_read_as_line_by_line(lines: list[bytes]) -> None:
    _same(lines)


@pytest.mark.parametrize("odd", [
    b'{"id": "a", "x": [1, 2]}', b'{"id": "a", "x": {"k": 1}}', b'{"id": "a", "x": 18446744073709551616}',
    b'{"id": 18446744073709551617, "x": 1}', b'{"id": "a", "x": NaN}', b'{"id": "a\\u00e9"}',
    b'{"id": "\\ud800"}', b'{"id": "a\\u0000b"}', b'', b'   ', b'[1, 2]', b'{"id": ', b'"text"',
    b'{"id": "a"} {"id": "b"}', b'{"id": "\xff"}', b'{"id": "a", "x": 1e400}', b'{"id": 1.25e2}',
    b'{"id": "a", "x": 9223372036854775807}', b'{"id": "a", "x": -9223372036854775809}',
    b'{"id": -9223372036854775809, "x": 1}', b'{"id": "a", "x": 100000000000000000000000}',
    b'{"id": "a", "x": 1e19}', b'{"id": 1e19, "x": 1}', b'{"id": "a", "x": [18446744073709551616]}',
])
def test_odd_lines_read_as_line_by_line(odd: bytes) -> None:
    plain = [b'{"id": "a", "cls": "pos", "ts": "2024-01-01T00:00:00Z", "x": 1.5}',
             b'{"id": 7, "cls": "neg", "x": 2}']
    _same([*plain, odd, *plain])


def test_limits_read_as_line_by_line() -> None:
    lines = [b'{"id": "a", "cls": "pos", "x": 1, "y": 2}', b'{"id": "b", "cls": "neg"}']
    _same(lines, Limits(max_fields=3))
    _same([*lines, json.dumps({"id": "c", "y": "z" * 1200}).encode()], Limits(max_record_bytes=1000))


def test_plain_block_takes_the_fast_path() -> None:
    lines = [json.dumps({"id": f"p{i}", "cls": "pos", "ts": 1704067200 + i, "x": i / 3, "unused": 1}).encode()
             for i in range(50)]
    reader = JsonLinesReader(Path("x.jsonl"), STRINGS, KEEP, Limits())
    assert reader._plain_lines(lines) is not None
    _same(lines)
