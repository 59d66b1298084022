"""Schema migrations (Alembic), run programmatically.

``upgrade()`` brings a database to the newest revision this code knows. A
database stamped with a revision this code does not know was migrated by a
newer StreamForge; we refuse to touch it rather than corrupt it.

This is where start-up first talks to the database, so a database that cannot
be reached or opened (refused connection, wrong password, not a database
file, read-only file) surfaces here as a one-line
:class:`~streamforge.errors.DatabaseError` naming ``STREAMFORGE_DATABASE_URL``
(see :func:`streamforge.db.engine.database_errors`).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from streamforge.db.engine import database_error, database_errors
from streamforge.errors import SchemaTooNewError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the database is stamped with (``None``: not migrated yet).

    Raises :class:`DatabaseError` if the database cannot be reached or read.
    """
    with database_errors(engine.url), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def check_not_newer(engine: Engine) -> None:
    """Raise :class:`SchemaTooNewError` if the database is ahead of this code."""
    revision = current_revision(engine)
    if revision is None:
        return
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise SchemaTooNewError(
            f"database schema revision {revision!r} is newer than this StreamForge "
            f"(knows up to {head_revision()!r}); upgrade StreamForge instead"
        )


def upgrade(engine: Engine) -> str:
    """Migrate to the newest revision; returns it."""
    check_not_newer(engine)
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        # Reachable but unusable: a read-only file, a full disk, no privileges.
        # A failing migration (any other error) keeps its traceback.
        raise database_error(exc, engine.url) from None
    return head_revision()
