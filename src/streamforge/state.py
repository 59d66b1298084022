"""Small persisted facts in the ``app_state`` table (device id, admin hash, the
shared secret key's fingerprint, …) and the key check and rotation over them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from streamforge.credentials import (
    FINGERPRINT_STATE_KEY,
    CredentialStore,
    check_fingerprint,
    reseal,
)
from streamforge.db.engine import Database
from streamforge.db.models import Account, AppState
from streamforge.errors import CredentialError


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


def check_secret_key(db: Database, store: CredentialStore) -> str | None:
    """Refuse a node whose shared key is not the cluster's (one line; see
    :func:`streamforge.credentials.check_fingerprint`); stores the fingerprint at first use."""
    stored = get_state(db, FINGERPRINT_STATE_KEY)
    return check_fingerprint(
        stored, store, lambda value: set_state(db, FINGERPRINT_STATE_KEY, value)
    )


def rotate_secret_key(db: Database, old: CredentialStore, new: CredentialStore) -> int:
    """Re-seal every stored secret (the provider passwords) from ``old`` to ``new``
    and store ``new``'s fingerprint, all in one transaction. Returns how many were
    re-sealed; on any error nothing changes."""
    fingerprint = new.fingerprint
    if fingerprint is None:
        raise CredentialError("the new key must be a shared secret key")
    with db.session() as session:
        accounts = list(session.scalars(select(Account).order_by(Account.id)))
        replaced = [bytes(account.password_encrypted) for account in accounts]
        for account in accounts:
            account.password_encrypted = reseal(account.password_encrypted, old, new)
        row = session.get(AppState, FINGERPRINT_STATE_KEY)
        if row is None:
            session.add(AppState(key=FINGERPRINT_STATE_KEY, value=fingerprint))
        else:
            row.value = fingerprint
    for blob in replaced:
        old.forget(blob)  # an OS keyring entry of the old backend is no longer referenced
    return len(replaced)
