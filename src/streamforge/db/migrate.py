"""Schema migrations (Alembic), run programmatically.

``upgrade()`` brings a database to the newest revision this code knows. A
database stamped with a revision this code does not know was migrated by a
newer StreamForge; we refuse to touch it rather than corrupt it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from streamforge.errors import SchemaTooNewError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
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
    command.upgrade(alembic_config(engine), "head")
    return head_revision()
