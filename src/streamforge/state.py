"""Small persisted facts in the ``app_state`` table (device id, admin hash, …)."""

from __future__ import annotations

from typing import Any

from streamforge.db.engine import Database
from streamforge.db.models import AppState


def get_state(db: Database, key: str, default: Any = None) -> Any:
    with db.session() as session:
        row = session.get(AppState, key)
        return default if row is None else row.value


def set_state(db: Database, key: str, value: Any) -> None:
    with db.session() as session:
        row = session.get(AppState, key)
        if row is None:
            session.add(AppState(key=key, value=value))
        else:
            row.value = value
