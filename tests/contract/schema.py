"""docs/contract.md as data: the record tables and the dtype table, and checks of frames and
JSON records against them.

The doc is the source of truth: a record is the `field | dtype | meaning` table under a
`### Record: <name>` heading, a dtype a row of the `dtype | pandas | JSON | meaning` table.
Nothing here knows a field name; everything comes from the markdown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CONTRACT_DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DURATION = re.compile(r"^\d+[smhd]$")


@dataclass(frozen=True)
class Dtype:
    name: str
    pandas: frozenset[str]  # accepted frame dtypes (empty: the dtype is JSON only)
    nullable: bool


@dataclass(frozen=True)
class Contract:
    records: dict[str, list[tuple[str, str]]]  # record -> [(field, dtype)] in order
    dtypes: dict[str, Dtype]

    def fields(self, record: str) -> list[str]:
        return [field for field, _ in self.records[record]]


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def _table_after(lines: list[str], start: int, header: list[str]) -> list[list[str]]:
    """Rows of the first table after `start` whose header is `header`, up to the next heading."""
    for index in range(start, len(lines)):
        if lines[index].startswith("#") and index > start:
            break
        if lines[index].startswith("|") and [c.lower() for c in _cells(lines[index])] == header:
            rows = []
            for line in lines[index + 2:]:  # skip the header and the |---| line
                if not line.startswith("|"):
                    break
                rows.append(_cells(line))
            return rows
    raise AssertionError(f"docs/contract.md: no table {header} after line {start + 1}")


def load_contract(path: Path = CONTRACT_DOC) -> Contract:
    lines = path.read_text(encoding="utf-8").splitlines()
    records: dict[str, list[tuple[str, str]]] = {}
    dtypes: dict[str, Dtype] = {}
    for number, line in enumerate(lines):
        found = re.match(r"^### Record: (\w+)\s*$", line)
        if found:
            name = found.group(1)
            assert name not in records, f"record {name} is defined twice"
            rows = _table_after(lines, number, ["field", "dtype", "meaning"])
            records[name] = [(row[0], row[1]) for row in rows]
        elif re.match(r"^#+ Dtypes\s*$", line):
            for row in _table_after(lines, number, ["dtype", "pandas", "json", "meaning"]):
                pandas = frozenset() if "JSON only" in row[1] else frozenset(p.strip() for p in row[1].split(","))
                dtypes[row[0]] = Dtype(row[0], pandas, "null" in row[2])
    assert records and dtypes, "docs/contract.md has no record or no dtype table"
    unknown = {d for fields in records.values() for _, d in fields} - set(dtypes)
    assert not unknown, f"record tables use undefined dtypes {sorted(unknown)}"
    return contract_check(Contract(records, dtypes))


def contract_check(contract: Contract) -> Contract:
    for name, fields in contract.records.items():
        names = [f for f, _ in fields]
        assert len(names) == len(set(names)), f"record {name} lists a field twice"
    return contract


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(float(value))


def _value_ok(dtype: str, value: Any) -> bool:
    """A present value of a frame column or of a JSON record fits `dtype`."""
    base = dtype.rstrip("?")
    if base in ("string", "time", "duration"):
        if not isinstance(value, str):
            return False
        return bool(TIME.match(value)) if base == "time" else bool(DURATION.match(value)) if base == "duration" else True
    if base == "int":
        if isinstance(value, (bool, np.bool_)):
            return False
        if isinstance(value, (int, np.integer)):
            return True
        # `int?` columns of float64 (nulls read from SQL) hold whole numbers
        return dtype == "int?" and isinstance(value, (float, np.floating)) and float(value).is_integer()
    if base == "float":
        return isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if base == "bool":
        return isinstance(value, (bool, np.bool_))
    if base == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if base == "objects":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise AssertionError(f"no check for dtype {dtype}")


def check_frame(contract: Contract, record: str, frame: pd.DataFrame) -> None:
    """The frame has the record's fields in order; each column's dtype and values fit."""
    expected = contract.fields(record)
    columns = [str(c) for c in frame.columns]
    missing = [f for f in expected if f not in columns]
    extra = [c for c in columns if c not in expected]
    assert not missing and not extra, f"{record}: fields missing from the output {missing}, not in the doc {extra}"
    assert columns == expected, f"{record}: field order {columns} differs from the doc {expected}"
    for field, dtype_name in contract.records[record]:
        dtype = contract.dtypes[dtype_name]
        column = frame[field]
        present = [v for v in column.tolist() if not _missing(v)]
        if not present:
            continue  # an empty or all-missing column may be object
        assert str(column.dtype) in dtype.pandas, f"{record}.{field}: pandas dtype {column.dtype}, doc says {dtype_name}"
        if not dtype.nullable and dtype_name != "float":
            assert len(present) == len(column), f"{record}.{field}: missing values in a {dtype_name} field"
        wrong = [v for v in present if not _value_ok(dtype_name, v)]
        assert not wrong, f"{record}.{field}: values {wrong[:3]!r} are not {dtype_name}"


def check_json(contract: Contract, record: str, records: Any) -> None:
    """A JSON list of records: each one's keys in the record's order, values of their dtype."""
    assert isinstance(records, list), f"{record}: JSON output is not a list"
    for item in records:
        check_json_object(contract, record, item)


def check_json_object(contract: Contract, record: str, item: Any) -> None:
    expected = contract.fields(record)
    assert isinstance(item, dict) and list(item) == expected, \
        f"{record}: JSON keys {list(item) if isinstance(item, dict) else item!r} differ from the doc {expected}"
    for field, dtype_name in contract.records[record]:
        value = item[field]
        if value is None:
            assert contract.dtypes[dtype_name].nullable, f"{record}.{field}: null in a {dtype_name} field"
            continue
        if dtype_name.rstrip("?") == "int" and isinstance(value, float):
            assert dtype_name == "int?" and value.is_integer(), f"{record}.{field}: {value!r} is not {dtype_name}"
            continue
        assert _value_ok(dtype_name, value), f"{record}.{field}: {value!r} is not {dtype_name}"
