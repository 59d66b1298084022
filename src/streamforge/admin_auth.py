"""The admin password.

One admin password guards ``/api/v1`` and the UI. It is stored only as an
Argon2id hash in ``app_state``; ``STREAMFORGE_ADMIN_PASSWORD`` overrides the
stored one. On first start without either, a random password is generated,
printed once, and only its hash is kept.

This module only stores and checks the password; how a request offers it
(HTTP Basic for the API, a session cookie for the UI) is the web layer's
business (``web.auth``, ``web.ui.sessions``).
"""

from __future__ import annotations

import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from streamforge.db.engine import Database
from streamforge.state import get_state, set_state

ADMIN_HASH_KEY = "admin_password_hash"


class AdminAuth:
    """Checks admin passwords against the stored hash or the environment override."""

    def __init__(self, db: Database, override: str | None = None) -> None:
        self._db = db
        self._override = override
        self._hasher = PasswordHasher()

    @property
    def is_configured(self) -> bool:
        return bool(self._override) or get_state(self._db, ADMIN_HASH_KEY) is not None

    def set_password(self, password: str) -> None:
        if len(password) < 8:
            raise ValueError("the admin password must be at least 8 characters")
        set_state(self._db, ADMIN_HASH_KEY, self._hasher.hash(password))

    def ensure_password(self) -> str | None:
        """Generate and store a password if none exists; return it (to print once)."""
        if self.is_configured:
            return None
        password = secrets.token_urlsafe(12)
        self.set_password(password)
        return password

    def verify(self, password: str) -> bool:
        if self._override:
            return hmac.compare_digest(password.encode(), self._override.encode())
        stored = get_state(self._db, ADMIN_HASH_KEY)
        if not isinstance(stored, str):
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
