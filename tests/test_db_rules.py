"""The shared catalogue rules, pinned against a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.db.models import Account, ChannelMapping, XmltvChannel, XmltvSource, XtreamChannel
from streamforge.db.rules import (
    STREAMABLE_STATUSES,
    account_may_stream,
    published_channel,
    streamable_account,
)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'rules.db'}")
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.mark.parametrize(
    ("active", "status", "expected"),
    [
        (True, "Active", True),
        (True, "Unknown", True),
        (True, "Expired", False),
        (True, "Banned", False),
        (True, None, False),
        (False, "Active", False),
    ],
)
def test_account_may_stream(active: bool, status: str | None, expected: bool) -> None:
    assert account_may_stream(active, status) is expected


def _account(session, name: str, *, active: bool = True, status: str = "Active") -> Account:
    account = Account(
        name=name,
        server_url="http://127.0.0.1:1",
        username="u",
        password_encrypted=b"x",
        is_active=active,
        status=status,
    )
    session.add(account)
    session.flush()
    return account


def test_sql_and_python_forms_agree(db: Database) -> None:
    statuses = [*sorted(STREAMABLE_STATUSES), "Expired", "Disabled"]
    with db.session() as session:
        for i, status in enumerate(statuses):
            for active in (True, False):
                _account(session, f"a{i}{active}", active=active, status=status)
    with db.session() as session:
        rows = session.execute(select(Account.name, Account.is_active, Account.status)).all()
        via_sql = set(session.scalars(select(Account.name).where(streamable_account())))
    assert via_sql == {n for n, a, s in rows if account_may_stream(a, s)}
    assert len(via_sql) == len(STREAMABLE_STATUSES)


def test_published_channel(db: Database) -> None:
    with db.session() as session:
        good = _account(session, "good")
        expired = _account(session, "expired", status="Expired")
        source = XmltvSource(name="g", kind="url", location="http://127.0.0.1/g.xml")
        session.add(source)
        session.flush()

        def channel(xid: str, number: str | None, *, enabled: bool = True) -> XmltvChannel:
            row = XmltvChannel(
                source_id=source.id,
                xmltv_id=xid,
                display_name=xid,
                guide_number=number,
                is_enabled=enabled,
            )
            session.add(row)
            session.flush()
            return row

        def stream(account: Account, sid: int) -> XtreamChannel:
            row = XtreamChannel(account_id=account.id, stream_id=sid, name=f"s{sid}")
            session.add(row)
            session.flush()
            return row

        def mapping(ch: XmltvChannel, st: XtreamChannel) -> None:
            session.add(ChannelMapping(xmltv_channel_id=ch.id, xtream_channel_id=st.id))

        mapping(channel("published", "1"), stream(good, 1))
        mapping(channel("disabled", "2", enabled=False), stream(good, 2))
        mapping(channel("no-number", None), stream(good, 3))
        mapping(channel("expired-only", "4"), stream(expired, 4))
        channel("unmapped", "5")
        both = channel("both", "6")
        mapping(both, stream(expired, 6))
        mapping(both, stream(good, 7))
    with db.session() as session:
        published = set(session.scalars(select(XmltvChannel.xmltv_id).where(published_channel())))
    assert published == {"published", "both"}


async def test_run_and_write_leave_the_loop_free(db: Database) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def work(x: int) -> int:
        seen.append(threading.get_ident())
        return x * 2

    assert await db.run(work, 2) == 4
    assert await asyncio.gather(*(db.write(work, i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert loop_thread not in seen
    writer_threads = set(seen[1:])
    assert len(writer_threads) == 1  # one writer
