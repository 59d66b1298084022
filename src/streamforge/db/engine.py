"""Engine, session factory and the one seam for database work from async code.

SQLite runs in WAL mode with a busy timeout and foreign keys on, so readers
never block the writer; PostgreSQL goes through the same models unchanged.

Async code never touches the database on the event loop: it hands a plain
function to :meth:`Database.run` (reads, a small thread pool) or
:meth:`Database.write` (writes, one writer thread, so writers queue instead of
fighting over SQLite's lock). The function gets no arguments it did not ask
for; it opens its own :meth:`Database.session`.

A SQLite database file is created ``0600`` before the engine first opens it
(and an existing one, with its ``-wal``/``-shm``/``-journal`` files, loses
any group/other access); SQLite gives the ``-wal`` and ``-shm`` files it
creates the main file's mode, so they are private too. No umask is changed.

A database URL that cannot be used stops start-up with one line naming
``STREAMFORGE_DATABASE_URL``: a malformed URL or a missing driver raises
:class:`~streamforge.errors.ConfigError` from :func:`make_engine`; a database
that cannot be opened or reached raises
:class:`~streamforge.errors.DatabaseError` from :func:`make_engine` (SQLite
file) or from the first connection made under :func:`database_errors`. The
URL in a message always has its password replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote

import orjson
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from streamforge.errors import ConfigError, DatabaseError
from streamforge.filemodes import create_private_file, tighten

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 10
DATABASE_URL_SETTING = "STREAMFORGE_DATABASE_URL"
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
# scheme://user:password@rest — the password runs to the last "@" before the host.
_PASSWORD_IN_URL = re.compile(r"^(?P<head>[^:/?#]+://[^:/?#@]*):(?P<password>.*)@(?P<rest>[^@]*)$")
_READ_THREADS = 4

P = ParamSpec("P")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _json(value: Any) -> str:
    # orjson is several times faster than json.dumps on the guide import's
    # hundreds of thousands of small JSON values.
    return orjson.dumps(value).decode()


def redact_url(url: str | URL) -> str:
    """``url`` with its password (if any) shown as ``***``; works on malformed URLs too."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    match = _PASSWORD_IN_URL.match(url)
    if match is None:
        return url
    return f"{match['head']}:***@{match['rest']}"


def _reason(exc: BaseException, url: str | URL) -> str:
    """The first line of a driver's error message, with no password in it."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    password = url.password if isinstance(url, URL) else None
    if password is None:
        match = _PASSWORD_IN_URL.match(str(url))
        password = match["password"] if match else None
    if password:
        for form in {str(password), unquote(str(password))}:
            text = text.replace(form, "***")
    return text


def database_error(exc: DBAPIError, url: str | URL) -> DatabaseError:
    """The one-line :class:`DatabaseError` for a driver error on ``url``."""
    return DatabaseError(
        f"{DATABASE_URL_SETTING}: cannot use the database {redact_url(url)}: {_reason(exc, url)}"
    )


@contextmanager
def database_errors(url: str | URL) -> Iterator[None]:
    """Turn driver errors (cannot connect, not a database, …) inside the block
    into one-line :class:`DatabaseError` naming the setting."""
    try:
        yield
    except DBAPIError as exc:
        raise database_error(exc, url) from None


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; ``None`` for in-memory and URI-style databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database file ``0600`` (or tighten it) before SQLite opens it."""
    for suffix in _SQLITE_COMPANIONS:
        tighten(path.with_name(path.name + suffix))
    try:
        create_private_file(path)
    except OSError as exc:
        raise DatabaseError(
            f"{DATABASE_URL_SETTING}: cannot open the SQLite database {path} "
            f"({exc.strerror or type(exc).__name__})"
        ) from None


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"{DATABASE_URL_SETTING}: {redact_url(url)} is not a valid database URL "
            f"({_reason(exc, url)})"
        ) from None


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with StreamForge's connection settings.

    Raises :class:`ConfigError` for a malformed URL or a missing driver and
    :class:`DatabaseError` for a SQLite file that cannot be created or opened.
    """
    parsed = _parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = sqlite_path(parsed)
            if path is not None:
                _prepare_sqlite_file(path)
            engine = create_engine(
                parsed,
                connect_args={
                    "check_same_thread": False,
                    "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                },
                pool_pre_ping=False,
                json_serializer=_json,
                json_deserializer=orjson.loads,
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        connect_args: dict[str, Any] = {}
        if parsed.get_driver_name() in {"psycopg", "psycopg2"} and (
            "connect_timeout" not in parsed.query
        ):
            # libpq waits forever for an unreachable host by default.
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        return create_engine(
            parsed,
            connect_args=connect_args,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            json_serializer=_json,
            json_deserializer=orjson.loads,
        )
    except ArgumentError as exc:
        raise ConfigError(
            f"{DATABASE_URL_SETTING}: {redact_url(parsed)} cannot be used ({_reason(exc, parsed)})"
        ) from None
    except ImportError as exc:
        raise ConfigError(
            f"{DATABASE_URL_SETTING}: the database driver for {redact_url(parsed)} is not "
            f"installed ({exc.name or exc})"
        ) from None


class Database:
    """The engine plus a session factory; passed explicitly, never global."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="db-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-write")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self.sessions.begin() as session:
            yield session

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database reads ``fn(*args, **kwargs)`` off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(*args, **kwargs))

    async def write(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the one writer thread, after earlier writes."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))

    def dispose(self) -> None:
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.engine.dispose()
