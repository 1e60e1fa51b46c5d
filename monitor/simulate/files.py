"""Writing a simulation to disk: daily log files and a matching monitor.toml.

Layout under `directory`:
    predictions/predictions_<YYYY-MM-DD>[_<part>].<ext>   by prediction day
    labels/labels_<YYYY-MM-DD>[_<part>].<ext>             by label day
    reference.parquet                                     the labelled reference sample
    monitor.toml                                          from write_config
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.simulate.generate import DAY, SimulatedData
from monitor.simulate.scenario import Scenario

FORMATS = ("csv", "jsonl", "parquet")


def _write(frame: pd.DataFrame, path: Path, fmt: str, gzip: bool) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False, compression="gzip" if gzip else None)
    elif fmt == "jsonl":
        frame.to_json(
            path,
            orient="records",
            lines=True,
            double_precision=15,
            compression="gzip" if gzip else None,
        )
    else:
        frame.to_parquet(path, index=False, compression="gzip" if gzip else "snappy")


def _write_by_day(
    frame: pd.DataFrame,
    epochs: np.ndarray,
    folder: Path,
    stem: str,
    fmt: str,
    gzip: bool,
    files_per_day: int,
) -> list[Path]:
    """One file per day (or `files_per_day` consecutive time slices of it); `frame` must be
    sorted by `epochs` so every group is a contiguous slice."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f".{fmt}" + (".gz" if gzip and fmt != "parquet" else "")
    key = (epochs // DAY) * files_per_day + (epochs % DAY) * files_per_day // DAY
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(key)) + 1, [len(key)]])
    paths = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        day, part = divmod(int(key[lo]), files_per_day)
        name = str(np.datetime64(day, "D"))
        if files_per_day > 1:
            name += f"_{part:02d}"
        path = folder / f"{stem}_{name}{suffix}"
        _write(frame.iloc[lo:hi], path, fmt, gzip)
        paths.append(path)
    return paths


def write_logs(
    data: SimulatedData,
    directory: str | Path,
    fmt: str = "csv",
    gzip: bool = False,
    files_per_day: int = 1,
) -> dict[str, Any]:
    """Write predictions (by prediction day), labels (by label day) and `reference.parquet`.

    `fmt`: csv, jsonl or parquet; `gzip` compresses csv/jsonl files (`.csv.gz`,
    `.jsonl.gz`) and uses gzip inside parquet files. Returns
    `{"predictions": [paths], "labels": [paths], "reference": path}` in time order.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if files_per_day < 1:
        raise ValueError("files_per_day must be >= 1")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    predictions = _write_by_day(
        data.predictions,
        data.prediction_epoch,
        root / "predictions",
        "predictions",
        fmt,
        gzip,
        files_per_day,
    )
    labels = _write_by_day(
        data.labels, data.label_epoch, root / "labels", "labels", fmt, gzip, files_per_day
    )
    reference = root / "reference.parquet"
    data.reference.to_parquet(reference, index=False)
    return {"predictions": predictions, "labels": labels, "reference": reference}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_document(
    scenario: Scenario,
    *,
    database_url: str = "sqlite:///monitor.db",
    model: str = "triage",
    extra: Mapping[str, Any] | None = None,
    model_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The monitor.toml content for a scenario written by `write_logs`, as a dict."""
    model_table: dict[str, Any] = {
        "name": model,
        "classes": list(scenario.classes),
        "minority_classes": scenario.minority_classes,
        "segments": list(scenario.segments),
        "features": scenario.features,
        "bucket": "1h",
        "reference": "reference.parquet",
        "predictions": {"path": "predictions/*"},
        "labels": {"path": "labels/*"},
        "alerts": [
            {
                "name": "minority-recall",
                "metric": "recall",
                "classes": "minority",
                "segments": list(scenario.segments),
                "window": "7d",
                "min_support": 30,
                "min_drop": 0.10,
            }
        ],
    }
    model_table = _merge(model_table, model_extra or {})
    document: dict[str, Any] = {"database_url": database_url, "models": [model_table]}
    return _merge(document, extra or {})


def write_config(
    directory: str | Path,
    scenario: Scenario,
    *,
    database_url: str = "sqlite:///monitor.db",
    model: str = "triage",
    extra: Mapping[str, Any] | None = None,
    model_extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `directory/monitor.toml` (docs/contract.md §2) for logs written by `write_logs`.

    Paths are relative to the config folder. `extra` is merged into the top level (e.g.
    `{"channels": [{"type": "log"}]}`), `model_extra` into the model table (e.g.
    `{"intersections": True}` or `{"alerts": [...]}` to replace the default rule).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    document = config_document(
        scenario, database_url=database_url, model=model, extra=extra, model_extra=model_extra
    )
    path = root / "monitor.toml"
    path.write_text(dump_toml(document), encoding="utf-8")
    return path


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dump_toml(document: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for config documents: scalars, lists, tables, arrays of tables.
    Keys whose value is None are left out."""
    lines = []
    for key, value in document.items():
        if value is None or isinstance(value, Mapping) or _is_table_array(value):
            continue
        lines.append(f"{key} = {_value(value)}")
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]", dump_toml(value, f"{name}.").strip("\n")]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{name}]]", dump_toml(item, f"{name}.").strip("\n")]
    return "\n".join(line for line in lines if line is not None) + "\n"
