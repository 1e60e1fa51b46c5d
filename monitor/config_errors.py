"""Configuration errors as a person reads monitor.toml (docs/contract.md §3): each problem
placed by its array-of-tables entry (`[[models]] name="triage"`, `[[models.alerts]] name="r1"
in [[models]] name="triage"`) rather than pydantic's `models.0.alerts.0`, then by the key as
TOML writes it (`scheduler.interval`), and an unknown key with the closest key that table
accepts."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


def format_validation_error(error: ValidationError, root: type[BaseModel], source: str,
                            data: dict[str, Any] | None = None) -> str:
    """Every problem on its own line, placed as the TOML reads: inside an array of tables by
    its header and entry (`[[models.alerts]] name="r1" in [[models]] name="triage"`, not
    `models.0.alerts.0`), then the key as a TOML dotted key (`drift.kl`,
    `retention.raw_predictions`); an unknown key with the closest one its table accepts."""
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        loc = tuple(item["loc"])
        last_entry = max((i for i, part in enumerate(loc) if isinstance(part, int)), default=-1)
        section = _entries(loc[: last_entry + 1], data or {})
        key = ".".join(str(part) for part in loc[last_entry + 1:])
        where = f"{section}: " if section else ""
        if item["type"] == "extra_forbidden" and key:
            prefix, _, name = key.rpartition(".")
            close = difflib.get_close_matches(name, _known_keys(root, loc[:-1]), n=1, cutoff=0.6)
            hint = f" (did you mean {'.'.join(filter(None, (prefix, close[0])))!r}?)" if close else ""
            lines.append(f"  {where}unknown key {key!r}{hint}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}{key}: {message}" if key else f"  {where}{message}")
    return "\n".join(lines)


def _entries(loc: tuple[Any, ...], data: Any) -> str:
    """The array-of-tables entries on the way to `loc` (which ends at an entry), innermost
    first, each by its `name` (else its position): `[[models.alerts]] name="r1" in [[models]]
    name="triage"`."""
    entries: list[str] = []
    path: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else {}
            name = node.get("name") if isinstance(node, dict) else None
            label = f'name="{name}"' if isinstance(name, str) else f"entry {part + 1}"
            entries.append(f"[[{'.'.join(path)}]] {label}")
        else:
            path.append(str(part))
            node = node.get(part, {}) if isinstance(node, dict) else {}
    return " in ".join(reversed(entries))


def _known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at `loc` accepts (field names and their aliases)."""
    cls: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        cls = _model_in(field.annotation) if field is not None else None
        if cls is None:
            return []
    keys = [name for name in cls.model_fields if name != "base_dir"]
    return keys + [f.alias for f in cls.model_fields.values() if f.alias]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `list[X]`, `X | None`, `Annotated[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
