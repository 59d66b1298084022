"""Provider accounts: add, test, update, enable/disable, remove.

The account service is the only code that opens a sealed provider password,
and it hands it straight to an :class:`XtreamClient`. What it returns to
callers (:class:`AccountView`) never contains the password, and shows the
username masked.

``test()`` asks the panel for the account's state (auth, status, expiry,
connection limits, output formats) and stores it; a provider failure is stored
as ``last_error`` (a one-line, credential-free message) and leaves every
other stored field as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.models import Account, XtreamChannel
from streamforge.db.rules import account_may_stream
from streamforge.errors import (
    AccountExpiredError,
    ConfigError,
    ConflictError,
    CredentialError,
    InvalidInput,
    NotFoundError,
    ProviderAuthError,
    ProviderError,
)
from streamforge.events import EventLog

if TYPE_CHECKING:
    # The client pulls in aiohttp: it is imported where a panel is contacted, so
    # that reading accounts (``streamforge account list``) starts fast.
    from streamforge.xtream.client import XtreamClient, XtreamTimeouts
    from streamforge.xtream.models import AccountInfo


def mask_username(username: str) -> str:
    """``johnsmith`` → ``jo•••••th``: enough to recognise, not enough to use."""
    if len(username) <= 4:
        return "•" * len(username)
    return username[:2] + "•" * (len(username) - 4) + username[-2:]


NAME_MAX = 100


def check_text(label: str, value: str) -> str:
    """``value`` if it can be stored and shown: no control characters (a NUL is refused by
    PostgreSQL), no lone surrogates; else :class:`InvalidInput` naming ``label``."""
    if any(not c.isprintable() and c not in " " for c in value):
        raise InvalidInput(f"{label} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{label} is not valid text (a lone surrogate)") from None
    return value


def check_account_name(name: str) -> str:
    """An account name: 1 to 100 printable characters, no ``/`` (names are URL path parts)."""
    name = check_text("the account name", name).strip()
    if not name:
        raise ConfigError("an account needs a name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"an account name is at most {NAME_MAX} characters")
    if "/" in name or "\\" in name:
        raise InvalidInput(f"account name {name!r} must not contain '/' or '\\'")
    return name


def check_server_url(url: str) -> str:
    url = check_text("the server URL", url).strip()
    if any(c.isspace() for c in url):
        raise InvalidInput(f"server URL {url!r} must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(
            f"server URL {url!r} is malformed ({exc}); it must look like "
            "http://provider.example:8080"
        ) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"server URL {url!r} must look like http://provider.example:8080")
    if port == 0:
        raise InvalidInput(f"server URL {url!r}: port 0 is not a port")
    if parts.username or parts.password:
        raise ConfigError("put the username and password in their own fields, not in the URL")
    return url.rstrip("/")


@dataclass(frozen=True)
class AccountView:
    """What the CLI, API and UI may show about an account."""

    id: int
    name: str
    server_url: str
    username_masked: str
    user_agent: str | None
    priority: int
    is_active: bool
    status: str
    exp_date: datetime | None
    is_trial: bool
    max_connections: int
    active_cons: int
    allowed_output_formats: list[str]
    last_checked_at: datetime | None
    last_error: str | None
    last_synced_at: datetime | None
    channel_count: int

    @property
    def streamable(self) -> bool:
        return account_may_stream(self.is_active, self.status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "server_url": self.server_url,
            "username": self.username_masked,
            "user_agent": self.user_agent,
            "priority": self.priority,
            "is_active": self.is_active,
            "streamable": self.streamable,
            "status": self.status,
            "exp_date": self.exp_date.isoformat() if self.exp_date else None,
            "is_trial": self.is_trial,
            "max_connections": self.max_connections,
            "active_cons": self.active_cons,
            "allowed_output_formats": self.allowed_output_formats,
            "last_checked_at": self.last_checked_at.isoformat() if self.last_checked_at else None,
            "last_error": self.last_error,
            "last_synced_at": self.last_synced_at.isoformat() if self.last_synced_at else None,
            "channel_count": self.channel_count,
        }


@dataclass(frozen=True)
class StreamAccess:
    """An account's live-URL builder for the stream proxy (holds the password: never log)."""

    client: XtreamClient
    user_agent: str

    def __repr__(self) -> str:
        return "StreamAccess(<redacted>)"


class AccountCheckFailed(ProviderError):
    """A new account was not stored: the panel refused it or could not be asked."""


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str
    account: AccountView


def _view(account: Account, channel_count: int) -> AccountView:
    return AccountView(
        id=account.id,
        name=account.name,
        server_url=account.server_url,
        username_masked=mask_username(account.username),
        user_agent=account.user_agent,
        priority=account.priority,
        is_active=account.is_active,
        status=account.status,
        exp_date=account.exp_date,
        is_trial=account.is_trial,
        max_connections=account.max_connections,
        active_cons=account.active_cons,
        allowed_output_formats=list(account.allowed_output_formats or []),
        last_checked_at=account.last_checked_at,
        last_error=account.last_error,
        last_synced_at=account.last_synced_at,
        channel_count=channel_count,
    )


class AccountService:
    """Account operations over the database, the credential store and the panel."""

    def __init__(
        self,
        db: Database,
        credentials: CredentialStore,
        events: EventLog,
        *,
        default_user_agent: str,
        timeouts: XtreamTimeouts | None = None,
    ) -> None:
        self._db = db
        self._credentials = credentials
        self._events = events
        self._default_user_agent = default_user_agent
        self._timeouts = timeouts

    # -- reading ----------------------------------------------------------
    def all(self) -> list[AccountView]:
        with self._db.session() as session:
            counts = dict(
                session.execute(
                    select(XtreamChannel.account_id, func.count()).group_by(
                        XtreamChannel.account_id
                    )
                ).all()
            )
            accounts = session.scalars(select(Account).order_by(Account.priority, Account.name))
            return [_view(a, int(counts.get(a.id, 0))) for a in accounts]

    def get(self, name: str) -> AccountView:
        with self._db.session() as session:
            account = self._find(session, name)
            count = session.scalar(
                select(func.count())
                .select_from(XtreamChannel)
                .where(XtreamChannel.account_id == account.id)
            )
            return _view(account, int(count or 0))

    @staticmethod
    def _find(session: Any, name: str) -> Account:
        check_text("the account name", name)
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            raise NotFoundError(f"no account named {name!r} (see `streamforge account list`)")
        return account  # type: ignore[no-any-return]

    def _client_timeouts(self) -> XtreamTimeouts:
        from streamforge.xtream.client import XtreamTimeouts

        return self._timeouts or XtreamTimeouts(connect=5.0, read=15.0, total=120.0)

    def client(self, name: str) -> XtreamClient:
        """An API client for the account (its password is opened here and, for live
        URLs, in :meth:`stream_access`; nowhere else)."""
        from streamforge.xtream.client import XtreamClient

        with self._db.session() as session:
            account = self._find(session, name)
            password = self._credentials.open(account.password_encrypted)
            return XtreamClient(
                account.server_url,
                account.username,
                password,
                user_agent=account.user_agent or self._default_user_agent,
                timeouts=self._client_timeouts(),
                label=repr(account.name),
            )

    def stream_access(self, account_ids: set[int]) -> dict[int, StreamAccess | str]:
        """What the stream proxy needs to open live URLs, per account id; a
        credential that cannot be opened gives its error message instead."""
        from streamforge.xtream.client import XtreamClient

        access: dict[int, StreamAccess | str] = {}
        with self._db.session() as session:
            for account in session.scalars(select(Account).where(Account.id.in_(account_ids))):
                try:
                    password = self._credentials.open(account.password_encrypted)
                except CredentialError as exc:
                    access[account.id] = str(exc)
                    continue
                access[account.id] = StreamAccess(
                    XtreamClient(
                        account.server_url,
                        account.username,
                        password,
                        user_agent=account.user_agent or self._default_user_agent,
                        label=repr(account.name),
                    ),
                    account.user_agent or self._default_user_agent,
                )
        return access

    # -- writing ----------------------------------------------------------
    async def add(
        self,
        name: str,
        *,
        server_url: str,
        username: str,
        password: str,
        user_agent: str | None = None,
        priority: int = 0,
        test: bool = True,
        check: bool = False,
    ) -> TestResult:
        """Store a new account, then test it. An unreachable server is stored anyway
        (marked as failing) so the user can fix the network later.

        With ``check`` the panel is asked *first* and nothing is stored unless it
        accepts the account: a wrong password, a dead port, a server that is not
        an Xtream panel or an account that is not active raise
        :class:`AccountCheckFailed` (what the command line and the UI's "Save
        account" do; they offer to save without the check)."""
        name = check_account_name(name)
        if not username or not password:
            raise ConfigError("an account needs a username and a password")
        check_text("the username", username)
        check_text("the password", password)
        if user_agent:
            check_text("the User-Agent", user_agent)
        url = check_server_url(server_url)
        if check:
            await self._db.run(self._name_is_free, name)
            info = await self._check_new(name, url, username, password, user_agent)
            await self._db.write(self._insert, name, url, username, password, user_agent, priority)
            self._events.record("info", "account", f"account {name!r} added", {"account": name})
            await self._db.write(self._store_info, name, info, datetime.now(UTC))
            return await self._checked(name, info)
        await self._db.write(self._insert, name, url, username, password, user_agent, priority)
        self._events.record("info", "account", f"account {name!r} added", {"account": name})
        if not test:
            view = await self._db.run(self.get, name)
            return TestResult(True, "added (not tested)", view)
        return await self.test(name)

    def _name_is_free(self, name: str) -> None:
        with self._db.session() as session:
            if session.scalar(select(Account.id).where(Account.name == name)) is not None:
                raise ConflictError(f"an account named {name!r} already exists")

    async def _check_new(
        self, name: str, url: str, username: str, password: str, user_agent: str | None
    ) -> AccountInfo:
        """The panel's answer for credentials not stored yet, or :class:`AccountCheckFailed`."""
        from streamforge.xtream.client import XtreamClient

        client = XtreamClient(
            url,
            username,
            password,
            user_agent=user_agent or self._default_user_agent,
            timeouts=self._client_timeouts(),
            label=repr(name),
        )
        try:
            async with client:
                info = await client.account_info()
        except ProviderError as exc:
            raise AccountCheckFailed(f"account {name!r} not saved: {exc}") from None
        if not info.is_active:
            when = f" since {info.exp_date:%Y-%m-%d}" if info.exp_date else ""
            raise AccountCheckFailed(
                f"account {name!r} not saved: the panel says it is {info.status.value}{when}"
            )
        return info

    def _insert(
        self,
        name: str,
        url: str,
        username: str,
        password: str,
        user_agent: str | None,
        priority: int,
    ) -> None:
        with self._db.session() as session:
            if session.scalar(select(Account.id).where(Account.name == name)) is not None:
                raise ConflictError(f"an account named {name!r} already exists")
            session.add(
                Account(
                    name=name,
                    server_url=url,
                    username=username,
                    password_encrypted=self._credentials.seal(password),
                    user_agent=user_agent or None,
                    priority=priority,
                )
            )

    async def test(self, name: str) -> TestResult:
        """Ask the panel for the account's state and store it."""
        client = await self._db.run(self.client, name)
        now = datetime.now(UTC)
        try:
            async with client:
                info = await client.account_info()
        except ProviderError as exc:
            message = str(exc)
            await self._db.write(self._store_failure, name, exc, now)
            self._events.record(
                "warning",
                "account",
                f"account {name!r} test failed",
                {"account": name, "error": message},
            )
            return TestResult(False, message, await self._db.run(self.get, name))
        await self._db.write(self._store_info, name, info, now)
        return await self._checked(name, info)

    async def _checked(self, name: str, info: AccountInfo) -> TestResult:
        """Record the panel's answer (already stored) and say what it means."""
        self._events.record(
            "info",
            "account",
            f"account {name!r} checked: {info.status.value}",
            {"account": name, "status": info.status.value, "max_connections": info.max_connections},
        )
        view = await self._db.run(self.get, name)
        if info.is_active:
            message = f"ok: {info.status.value}, {info.max_connections} connection(s), " + (
                f"expires {info.exp_date:%Y-%m-%d}" if info.exp_date else "no expiry"
            )
            return TestResult(True, message, view)
        when = f" on {info.exp_date:%Y-%m-%d}" if info.exp_date else ""
        return TestResult(
            False,
            f"account {name!r} is {info.status.value}{when}; it will not be used for streaming",
            view,
        )

    async def probe(
        self, *, server_url: str, username: str, password: str, user_agent: str | None = None
    ) -> dict[str, Any]:
        """Test credentials without storing anything (the UI's "test before saving")."""
        from streamforge.xtream.client import XtreamClient

        client = XtreamClient(
            check_server_url(server_url),
            username,
            password,
            user_agent=user_agent or self._default_user_agent,
            timeouts=self._client_timeouts(),
        )
        try:
            async with client:
                info = await client.account_info()
        except ProviderError as exc:
            return {"ok": False, "message": str(exc)}
        return {
            "ok": info.is_active,
            "message": f"{info.status.value}, {info.max_connections} connection(s)"
            + (f", expires {info.exp_date:%Y-%m-%d}" if info.exp_date else ""),
            "status": info.status.value,
            "max_connections": info.max_connections,
            "exp_date": info.exp_date.isoformat() if info.exp_date else None,
        }

    def _store_failure(self, name: str, exc: ProviderError, now: datetime) -> None:
        with self._db.session() as session:
            account = self._find(session, name)
            account.last_checked_at = now
            account.last_error = str(exc)
            if isinstance(exc, ProviderAuthError):
                account.status = "AuthFailed"
            elif isinstance(exc, AccountExpiredError):
                account.status = "Expired"

    def _store_info(self, name: str, info: AccountInfo, now: datetime) -> None:
        with self._db.session() as session:
            account = self._find(session, name)
            account.status = info.status.value
            account.exp_date = info.exp_date
            account.is_trial = info.is_trial
            account.max_connections = max(info.max_connections, 1)
            account.active_cons = info.active_cons
            account.allowed_output_formats = list(info.allowed_output_formats)
            account.last_checked_at = now
            account.last_error = None

    def update(
        self,
        name: str,
        *,
        new_name: str | None = None,
        server_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        user_agent: str | None = None,
        priority: int | None = None,
    ) -> AccountView:
        if new_name is not None:
            new_name = check_account_name(new_name)
        for label, text in (
            ("the username", username),
            ("the password", password),
            ("the User-Agent", user_agent),
        ):
            if text:
                check_text(label, text)
        if server_url is not None:
            server_url = check_server_url(server_url)
        with self._db.session() as session:
            account = self._find(session, name)
            if new_name is not None and new_name != name:
                clash = session.scalar(select(Account.id).where(Account.name == new_name))
                if clash is not None:
                    raise ConflictError(f"an account named {new_name!r} already exists")
                account.name = new_name
            if server_url is not None:
                account.server_url = server_url
            if username:
                account.username = username
            if password:
                old = account.password_encrypted
                account.password_encrypted = self._credentials.seal(password)
                self._credentials.forget(old)
            if user_agent is not None:
                account.user_agent = user_agent or None
            if priority is not None:
                account.priority = priority
            final = account.name
        self._events.record("info", "account", f"account {final!r} updated", {"account": final})
        return self.get(final)

    def set_active(self, name: str, active: bool) -> AccountView:
        with self._db.session() as session:
            self._find(session, name).is_active = active
        state = "enabled" if active else "disabled"
        self._events.record("info", "account", f"account {name!r} {state}", {"account": name})
        return self.get(name)

    def remove(self, name: str) -> None:
        with self._db.session() as session:
            account = self._find(session, name)
            blob = account.password_encrypted
            session.delete(account)
        self._credentials.forget(blob)
        self._events.record("warning", "account", f"account {name!r} removed", {"account": name})
