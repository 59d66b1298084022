"""The mutable heart of one mock provider, shared by its HTTP handlers and controllers.

Theory of operation
-------------------
:class:`ProviderState` bundles the catalogue (replaced wholesale when an account is
changed), the media library, the :class:`~.faults.FaultBoard`, the
:class:`~.connections.ConnectionRegistry`, redirect tokens and the cache of serialised
API answers. It is created and used on the event loop thread only; the
:class:`~.server.MockProvider` runners and the ``/_control`` routes both call its
methods, so the in-process API and the HTTP control API behave identically.

``epoch`` is the monotonic instant the provider's "broadcast" began: every live
connection to the same stream starts at the same point of the same loop, as viewers
of a real live channel do.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamforge.errors import ConfigError
from streamforge.mockprovider.catalog import Account, AccountStatus, Catalog
from streamforge.mockprovider.connections import ConnectionRegistry, LimitMode, ProviderStats
from streamforge.mockprovider.faults import ApiQuirk, Fault, FaultBoard
from streamforge.mockprovider.media import ClipVariant, MediaLibrary

_PASSWORD_QUERY = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)
_PASSWORD_PATH = re.compile(r"^(/(?:live/)?[^/]+/)[^/]+(/[^/]+)$")


def redact(path_qs: str) -> str:
    """``path_qs`` with any password (query parameter or URL segment) replaced by ``***``."""
    path, sep, query = path_qs.partition("?")
    if not path.startswith(("/_control", "/live/play/")) and path.count("/") >= 3:
        path = _PASSWORD_PATH.sub(r"\1***\2", path)
    return path + sep + _PASSWORD_QUERY.sub(r"\1***", query)


@dataclass(frozen=True)
class RedirectToken:
    account: str
    stream_id: int
    expires: float


#: Account fields that the control API may change.
_MUTABLE_ACCOUNT_FIELDS = frozenset(
    {"status", "exp_date", "max_connections", "is_trial", "allowed_output_formats", "password"}
)


class ProviderState:
    """Catalogue, media, faults, connections and caches of one running mock panel."""

    def __init__(
        self,
        catalog: Catalog,
        media: MediaLibrary,
        *,
        limit_mode: LimitMode = LimitMode.KILL_OLDEST,
        guide_hours_before: float = 2.0,
        guide_hours_after: float = 12.0,
    ) -> None:
        self.catalog = catalog
        self.media = media
        self.board = FaultBoard()
        self.registry = ConnectionRegistry(limit_mode)
        self.epoch = time.monotonic()
        self.guide_hours_before = guide_hours_before
        self.guide_hours_after = guide_hours_after
        self.tokens: dict[str, RedirectToken] = {}
        self.api_cache: dict[tuple[Any, ...], bytes] = {}
        #: True once the provider runs on its event loop (media can then be prefetched).
        self.serving = False

    # -- authentication -----------------------------------------------------------------
    def authenticate(self, username: str | None, password: str | None) -> Account | None:
        """The account for these credentials, or None (constant-time password check)."""
        if not username or password is None:
            return None
        account = self.catalog.find_account(username)
        if account is None:
            return None
        if not hmac.compare_digest(account.password.encode(), password.encode()):
            return None
        return account

    # -- redirect tokens ------------------------------------------------------------------
    def issue_token(self, account: str, stream_id: int, ttl: float) -> str:
        now = time.monotonic()
        for key in [k for k, t in self.tokens.items() if t.expires <= now]:
            del self.tokens[key]
        token = secrets.token_urlsafe(16)
        self.tokens[token] = RedirectToken(account, stream_id, now + ttl)
        return token

    def redeem_token(self, token: str, stream_id: int) -> str | None:
        """The account name a valid, unexpired token for ``stream_id`` stands for."""
        found = self.tokens.get(token)
        if found is None or found.stream_id != stream_id or found.expires <= time.monotonic():
            return None
        return found.account

    # -- control operations (shared by the in-process API and /_control) -----------------
    def set_fault(self, stream_id: int, fault: Fault) -> None:
        self.board.set_fault(stream_id, fault)
        if self.serving:
            # Start encoding the replacement picture/sound now, so it is ready to fire.
            for profile, variant in self.fault_media():
                self.media.prefetch(profile, variant)

    def fault_media(self) -> set[tuple[str, ClipVariant]]:
        """(profile, variant) of the replacement content the current faults need."""
        needed = set()
        for stream_id, fault in self.board.faults().items():
            stream = self.catalog.find_stream(stream_id)
            variant = fault.kind.variant
            if stream is not None and variant is not None:
                needed.add((stream.profile, variant))
        return needed

    def recover(self, stream_id: int | None = None) -> None:
        self.board.recover(stream_id)

    def add_quirk(self, quirk: ApiQuirk) -> None:
        self.board.add_quirk(quirk)

    def clear_quirks(self) -> None:
        self.board.clear_quirks()

    def kill(
        self, *, stream_id: int | None = None, account: str | None = None, reset: bool = False
    ) -> int:
        return self.registry.kill(stream_id=stream_id, account=account, reset=reset)

    def set_limit_mode(self, mode: LimitMode) -> None:
        self.registry.limit_mode = LimitMode(mode)

    def update_account(self, username: str, changes: Mapping[str, Any]) -> Account:
        """Change an account's status/limits live (e.g. expire it mid-test)."""
        unknown = set(changes) - _MUTABLE_ACCOUNT_FIELDS
        if unknown:
            raise ConfigError(f"account fields cannot be changed: {sorted(unknown)}")
        values = dict(changes)
        if "status" in values:
            values["status"] = AccountStatus(values["status"])
        if "allowed_output_formats" in values:
            values["allowed_output_formats"] = tuple(values["allowed_output_formats"])
        account = dataclasses.replace(self.catalog.account(username), **values)
        self.catalog = self.catalog.with_account(account)
        self.api_cache.clear()
        return account

    def stats(self) -> ProviderStats:
        return self.registry.snapshot()

    def faults_dict(self) -> dict[str, Any]:
        return {
            "faults": {str(k): v.to_dict() for k, v in self.board.faults().items()},
            "quirks": [q.to_dict() for q in self.board.quirks()],
            "limit_mode": self.registry.limit_mode.value,
        }
