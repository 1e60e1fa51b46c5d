"""Errors shared across the package, in a module that imports nothing of ours.

`config` and `secrets` both raise `ConfigError`; keeping it here lets `secrets` be read
without loading the config models (and breaks the config <-> secrets import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """A configuration problem the user must fix (exit code 2)."""


class UnknownName(ValueError):
    """A name that no registry entry has (a drift method, channel type, input format or
    metric). A ValueError, so that pydantic reports it as a validation error of its key; the
    message lists what is registered, so a typo can be corrected from the message alone."""

    def __init__(self, kind: str, name: object, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, tuple(known)
        super().__init__(f"unknown {kind} {name!r} (registered: {', '.join(self.known) or 'none'})")
