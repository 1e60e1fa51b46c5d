"""What a file reader yields and the small pieces the CSV and JSON-lines readers share:
`Chunk` (records with `_row`, plus the rows that could not be parsed, as rejects), `ReadState`,
`UnreadableFile`, `LongLine` (what the block reader yields in place of a line too long to
keep), and how a row's bytes are decoded and kept for inspection."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.ingest.validate import REJECT_COLUMNS

CHUNK_ROWS = 250_000
ROW_FIELD = "(row)"  # the `field` of a reject for a row that could not be parsed at all
RAW_CHARS = 2_000  # what a reject keeps of its raw text
BOM = b"\xef\xbb\xbf"
NUL_REASON = "contains a NUL character"
SURROGATE_REASON = "contains a lone UTF-16 surrogate (not valid Unicode text)"
# JSON lines, Parquet and HTTP bodies alike (`1e400` and `Infinity` in JSON, inf in a Parquet float column)
NOT_FINITE_REASON = "infinite number where an id, class, version or segment value is expected"


class UnreadableFile(Exception):
    """The file cannot be parsed at all (it is marked failed; other files go on)."""


@dataclass
class Chunk:
    frame: pd.DataFrame  # raw records, with `_row`
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECT_COLUMNS))


@dataclass(frozen=True)
class LongLine:
    """In place of a line longer than limits.max_record_bytes: its length and first bytes. The
    rest was skipped without being kept, so a line of a gigabyte costs a few blocks of memory;
    the reader rejects it as one record (one line)."""

    size: int  # bytes, without the newline
    head: bytes  # the first RAW_CHARS bytes, for the reject's raw text

    def reason(self, limit: int) -> str:
        return f"line of {self.size:,} bytes (limit {limit:,}: limits.max_record_bytes)"


@dataclass
class ReadState:
    """What a read found beyond its records: set while the chunks are consumed."""

    tail_held: bool = False  # an unterminated last line was left for the next read


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def rejects_frame(rows: list[int], reasons: list[str], raws: list[str], fields: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"row_number": np.asarray(rows, dtype=np.int64),
                         "field": fields if fields is not None else [ROW_FIELD] * len(rows),
                         "reason": reasons, "raw": raws}, columns=REJECT_COLUMNS)


def decode_row(raw: bytes) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason) for one line or record of a UTF-8 file."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        return None, f"not valid UTF-8 (byte 0x{byte:02x} at position {error.start + 1} of the row)"


def raw_text(raw: bytes) -> str:
    return raw[:RAW_CHARS].decode("utf-8", errors="replace").replace("\x00", "\\x00")
