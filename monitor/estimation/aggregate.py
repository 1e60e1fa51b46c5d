"""Ingest hooks of the estimation domain (see monitor/ingest/hooks.py)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from monitor.context import ModelContext


def on_reference(conn: Connection, ctx: ModelContext, reference: pd.DataFrame) -> None:
    """Store what the estimation domain needs from the reference."""


def on_predictions(conn: Connection, ctx: ModelContext, rows: pd.DataFrame) -> None:
    """Update the estimation counts with a batch of new predictions."""
