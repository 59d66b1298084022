"""Guide sources: add (URL, file, or an account's ``xmltv.php``), refresh, remove.

A guide URL that carries credentials (``username=…&password=…`` or another
secret query parameter, ``user:pass@`` userinfo, or an Xtream
``/live/U/P/`` path) is stored sealed by the credential store, like a
provider password; ``location`` — what the API, the command line and the
guides page show — holds only its redacted form (:func:`redact_guide_url`).
URLs stored in clear by an older version are sealed at start-up
(:meth:`EpgService.seal_stored_urls`).

A refresh downloads the guide to a temporary file (URLs and accounts), then
imports it through :mod:`streamforge.epg.store` (parsed in a worker process,
then swapped in on the database's writer thread): a failure at any step is
recorded on the source as ``last_error`` and the guide already stored stays
exactly as it was.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sqlalchemy import func, select

from streamforge.cpu_pool import CpuPool
from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.models import Account, GuideChannelSource, XmltvSource
from streamforge.epg.compression import ProgressCallback
from streamforge.epg.merge import check_offset
from streamforge.epg.store import (
    StagedGuide,
    refresh_channels,
    remove_source,
    stage_guide,
    stage_guide_in_process,
)
from streamforge.epg.xmltv_parse import ImportReport, ImportWindow
from streamforge.errors import (
    ConfigError,
    ConflictError,
    GuideError,
    InvalidInput,
    NotFoundError,
    StreamForgeError,
)
from streamforge.events import EventLog
from streamforge.xtream.accounts import AccountService, check_text
from streamforge.xtream.http import (
    REDACTED,
    HttpFailure,
    HttpTimeouts,
    ProviderHttp,
    redact_secrets,
    save_stream,
)

_DOWNLOAD_CHUNK = 1 << 16
#: Guides are large and slow: no total limit, but a minute of silence ends a download.
_DOWNLOAD_TIMEOUTS = HttpTimeouts(connect=15, headers=75, read=60, total=None)


_SECRET_PARAMS = frozenset(
    {"username", "user", "password", "pass", "passwd", "pwd", "token", "key"}
)
_CREDENTIAL_PATHS = frozenset({"live", "movie", "series", "timeshift"})


def _redact_parts(url: str) -> tuple[str, list[str]]:
    """``url`` with its credentials replaced by ``***``, and the credentials found."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url, []
    found: list[str] = []
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        found += [v for v in (parts.username, parts.password) if v]
        shown_host = f"[{host}]" if ":" in host else host
        netloc = f"{REDACTED}@{shown_host}" + (f":{port}" if port is not None else "")
    segments = parts.path.split("/")
    for index, segment in enumerate(segments[:-2]):
        if segment.lower() in _CREDENTIAL_PATHS:
            found += [s for s in segments[index + 1 : index + 3] if s]
            segments[index + 1 : index + 3] = [REDACTED, REDACTED]
            break
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key.lower() in _SECRET_PARAMS and value:
            found.append(value)
            kept.append((key, REDACTED))
        else:
            kept.append((key, value))
    redacted = urlunsplit(
        (
            parts.scheme,
            netloc,
            "/".join(segments),
            urlencode(kept, safe="*", quote_via=quote) if found else parts.query,
            parts.fragment,
        )
    )
    return redact_secrets(redacted, *(f for f in found if len(f) >= 3)), found


def redact_guide_url(url: str) -> str:
    """``url`` as it may be shown: credentials replaced by ``***``."""
    return _redact_parts(url)[0]


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries credentials (userinfo, secret parameters, ``/live/U/P/``)."""
    return bool(_redact_parts(url)[1])


@dataclass(frozen=True)
class SourceView:
    id: int
    name: str
    kind: str
    location: str | None
    account: str | None
    is_active: bool
    last_refreshed_at: datetime | None
    last_error: str | None
    last_report: dict[str, Any]
    channel_count: int
    priority: int = 0
    time_offset_minutes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "location": self.location,
            "account": self.account,
            "is_active": self.is_active,
            "last_refreshed_at": (
                self.last_refreshed_at.isoformat() if self.last_refreshed_at else None
            ),
            "last_error": self.last_error,
            "last_report": self.last_report,
            "channel_count": self.channel_count,
            "priority": self.priority,
            "time_offset_minutes": self.time_offset_minutes,
        }


class EpgService:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        events: EventLog,
        *,
        window: ImportWindow,
        user_agent: str,
        cpu: CpuPool | None = None,
        credentials: CredentialStore | None = None,
    ) -> None:
        self._db = db
        self._credentials = credentials
        self._accounts = accounts
        self._events = events
        self._window = window
        self._user_agent = user_agent
        self._cpu = cpu

    # -- reading ----------------------------------------------------------
    def all(self) -> list[SourceView]:
        with self._db.session() as session:
            counts = dict(
                session.execute(
                    select(GuideChannelSource.source_id, func.count()).group_by(
                        GuideChannelSource.source_id
                    )
                ).all()
            )
            accounts = dict(session.execute(select(Account.id, Account.name)).all())
            return [
                SourceView(
                    id=s.id,
                    name=s.name,
                    kind=s.kind,
                    location=s.location,
                    account=accounts.get(s.account_id) if s.account_id else None,
                    is_active=s.is_active,
                    last_refreshed_at=s.last_refreshed_at,
                    last_error=s.last_error,
                    last_report=dict(s.last_report or {}),
                    channel_count=int(counts.get(s.id, 0)),
                    priority=s.priority,
                    time_offset_minutes=s.time_offset_minutes,
                )
                for s in session.scalars(
                    select(XmltvSource).order_by(XmltvSource.priority, XmltvSource.name)
                )
            ]

    def get(self, name: str) -> SourceView:
        for view in self.all():
            if view.name == name:
                return view
        raise NotFoundError(f"no guide source named {name!r} (see `streamforge epg list`)")

    # -- writing ----------------------------------------------------------
    def add(
        self,
        name: str,
        *,
        url: str | None = None,
        file: str | None = None,
        from_account: str | None = None,
        priority: int = 0,
    ) -> SourceView:
        """Add a source. ``priority``: lower is preferred when several guides list
        the same channel (see :mod:`streamforge.epg.store`)."""
        name = check_text("the guide source name", name).strip()
        if not name:
            raise ConfigError("a guide source needs a name")
        given = [v for v in (url, file, from_account) if v]
        if len(given) != 1:
            raise ConfigError("give exactly one of --url, --file or --from-account")
        account_id: int | None = None
        sealed: bytes | None = None
        if url:
            url = check_text("the guide URL", url).strip()
            shown = redact_guide_url(url)
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 — raises for a port out of range
            except ValueError as exc:
                raise InvalidInput(f"guide URL {shown!r} is malformed ({exc})") from None
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ConfigError(f"guide URL {shown!r} must be an http(s) URL")
            kind, location = "url", url
            if url_has_credentials(url):
                if self._credentials is None:
                    raise ConfigError("this guide URL carries credentials but no credential store")
                sealed = self._credentials.seal(url)
                location = shown
        elif file:
            path = Path(file).expanduser()
            if not path.is_file():
                raise ConfigError(f"guide file {file} does not exist")
            kind, location = "file", str(path.resolve())
        else:
            assert from_account is not None
            account_id = self._accounts.get(from_account).id
            kind, location = "account", None
        with self._db.session() as session:
            if session.scalar(select(XmltvSource.id).where(XmltvSource.name == name)):
                raise ConflictError(f"a guide source named {name!r} already exists")
            session.add(
                XmltvSource(
                    name=name,
                    kind=kind,
                    location=location,
                    location_sealed=sealed,
                    account_id=account_id,
                    priority=int(priority),
                )
            )
        self._events.record("info", "epg", f"guide source {name!r} added", {"source": name})
        return self.get(name)

    def remove(self, name: str) -> None:
        with self._db.session() as session:
            source = session.scalar(select(XmltvSource).where(XmltvSource.name == name))
            if source is None:
                raise NotFoundError(f"no guide source named {name!r}")
            sealed = source.location_sealed
            remove_source(session, source)
        if sealed is not None and self._credentials is not None:
            self._credentials.forget(sealed)
        self._events.record("warning", "epg", f"guide source {name!r} removed", {"source": name})

    def set_priority(self, name: str, priority: int) -> SourceView:
        """Lower is preferred; the channels' names and the merged guide follow at once."""
        with self._db.session() as session:
            source = self._source(session, name)
            source.priority = int(priority)
            session.flush()
            refresh_channels(session)
        self._events.record(
            "info",
            "epg",
            f"guide source {name!r} priority set to {priority}",
            {"source": name, "priority": priority},
        )
        return self.get(name)

    def set_offset(self, name: str, minutes: int) -> SourceView:
        """Shift every programme time of this source by ``minutes`` in the output."""
        minutes = check_offset(minutes)
        with self._db.session() as session:
            self._source(session, name).time_offset_minutes = minutes
        self._events.record(
            "info",
            "epg",
            f"guide source {name!r} time offset set to {minutes:+d} min",
            {"source": name, "time_offset_minutes": minutes},
        )
        return self.get(name)

    @staticmethod
    def _source(session: Any, name: str) -> XmltvSource:
        source: XmltvSource | None = session.scalar(
            select(XmltvSource).where(XmltvSource.name == name)
        )
        if source is None:
            raise NotFoundError(f"no guide source named {name!r} (see `streamforge epg list`)")
        return source

    async def refresh(self, name: str, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Download (if needed) and import one source. Raises on failure; the stored
        guide is untouched then."""
        view = await self._db.run(self.get, name)
        started = datetime.now(UTC)
        try:
            report = await self._refresh(view, progress)
        except StreamForgeError as exc:
            await self._db.write(self._store_failure, view.id, str(exc))
            self._events.record(
                "error",
                "epg",
                f"guide {name!r} refresh failed",
                {"source": name, "error": str(exc)},
            )
            raise
        summary = {
            "channels": report.channels,
            "programmes": report.programmes,
            "skipped": dict(report.skipped),
            "bytes": report.bytes_read,
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
        }
        await self._db.write(self._store_success, view.id, summary)
        self._events.record(
            "info",
            "epg",
            f"guide {name!r} imported: {report.channels} channels, {report.programmes} programmes",
            {"source": name, **summary},
        )
        return summary

    def _store_failure(self, source_id: int, error: str) -> None:
        with self._db.session() as session:
            source = session.get(XmltvSource, source_id)
            if source is not None:
                source.last_error = error

    def _store_success(self, source_id: int, summary: dict[str, Any]) -> None:
        with self._db.session() as session:
            source = session.get(XmltvSource, source_id)
            if source is not None:
                source.last_refreshed_at = datetime.now(UTC)
                source.last_error = None
                source.last_report = summary

    async def _import(
        self, source_id: int, path: str, now: datetime, progress: ProgressCallback | None
    ) -> ImportReport:
        """Parse in a worker thread (the database untouched), then swap the staged
        guide in on the database's writer thread, so other writes wait only for
        the swap, not for the parse."""
        if self._cpu is not None:
            # In a worker process: the parse would otherwise hold this process's GIL.
            staged, report = await stage_guide_in_process(
                self._cpu, path, now=now, window=self._window, progress=progress
            )
        else:
            staged, report = await asyncio.to_thread(
                stage_guide, path, now=now, window=self._window, progress=progress
            )
        await self._db.write(_swap_and_close, staged, self._db, source_id)
        return report

    async def _refresh(self, view: SourceView, progress: ProgressCallback | None) -> Any:
        now = datetime.now(UTC)
        if view.kind == "file":
            assert view.location is not None
            return await self._import(view.id, view.location, now, progress)
        with tempfile.TemporaryDirectory(prefix="sf-guide-") as tmp:
            target = Path(tmp) / "guide.xml"
            if view.kind == "url":
                url = await self._db.run(self._download_url, view.id)
                await self._download(url, target)
            else:
                if view.account is None:
                    raise GuideError(f"guide source {view.name!r} lost its account")
                client = await self._db.run(self._accounts.client, view.account)
                async with client:
                    await client.download_xmltv(target)
            return await self._import(view.id, str(target), now, progress)

    def _download_url(self, source_id: int) -> str:
        """The full URL of a URL source (unsealed when it carries credentials)."""
        with self._db.session() as session:
            source = session.get(XmltvSource, source_id)
            if source is None or source.location is None:
                raise NotFoundError("the guide source was removed")
            if source.location_sealed is None:
                return source.location
            if self._credentials is None:
                raise GuideError("this guide URL is sealed but there is no credential store")
            return self._credentials.open(source.location_sealed)

    def seal_stored_urls(self) -> int:
        """Seal the URL sources an older version stored in clear (blocking; at start-up).

        Returns how many were sealed."""
        if self._credentials is None:
            return 0
        sealed = 0
        with self._db.session() as session:
            for source in session.scalars(
                select(XmltvSource).where(
                    XmltvSource.kind == "url", XmltvSource.location_sealed.is_(None)
                )
            ):
                if source.location and url_has_credentials(source.location):
                    source.location_sealed = self._credentials.seal(source.location)
                    source.location = redact_guide_url(source.location)
                    sealed += 1
        return sealed

    async def _download(self, url: str, target: Path) -> None:
        """Download a guide URL to ``target`` through the provider HTTP seam."""
        host = urlsplit(url).hostname or "the guide server"
        failure: HttpFailure
        try:
            async with (
                ProviderHttp(user_agent=self._user_agent) as http,
                http.get(url, timeouts=_DOWNLOAD_TIMEOUTS) as response,
            ):
                if response.status >= 400:
                    raise GuideError(f"guide download from {host} failed: HTTP {response.status}")
                await save_stream(response.chunks(_DOWNLOAD_CHUNK), target)
                return
        except HttpFailure as exc:
            failure = exc
        if failure.host in failure.detail:
            raise GuideError(f"guide download failed: {failure.detail}")
        raise GuideError(f"guide download from {failure.host} failed: {failure.detail}")


def _swap_and_close(staged: StagedGuide, db: Database, source_id: int) -> None:
    # Runs on the writer thread, which also closes the staging file: a refresh
    # cancelled while it waits must not pull the file out from under the swap.
    with staged:
        staged.swap_into(db, source_id)
