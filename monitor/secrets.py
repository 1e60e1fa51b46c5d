"""Secrets from the environment, directly or from a file (`*_FILE`, the Docker/Kubernetes way).

`secret("MONITOR_API_TOKEN")` returns `$MONITOR_API_TOKEN` when set and non-empty, else the
content of the file named by `$MONITOR_API_TOKEN_FILE` (one trailing newline stripped, as
secret files usually end with one), else None. Setting both is an error, because which one
wins would be a guess. Supported names: MONITOR_API_TOKEN, MONITOR_BASIC_AUTH,
MONITOR_DATABASE_URL. Values are read when asked for, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.errors import ConfigError

SECRET_NAMES = ("MONITOR_API_TOKEN", "MONITOR_BASIC_AUTH", "MONITOR_DATABASE_URL")


def secret(name: str, environ: dict[str, str] | None = None) -> str | None:
    """The value of secret `name` from `name` or `name_FILE`; None when neither is set.

    Raises ConfigError when both are set or the file cannot be read (the message names the
    variable and the path, never the value)."""
    env = os.environ if environ is None else environ
    direct = env.get(name) or None
    file_name = env.get(f"{name}_FILE") or None
    if direct is not None and file_name is not None:
        raise ConfigError(f"both {name} and {name}_FILE are set: set only one")
    if direct is not None:
        return direct
    if file_name is None:
        return None
    try:
        content = Path(file_name).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{name}_FILE={file_name}: cannot read it ({error.strerror})") from None
    value = content[:-1] if content.endswith("\n") else content
    value = value[:-1] if value.endswith("\r") else value
    return value or None
