"""The catalogue rules that every layer shares, each defined exactly once.

* **Streamable account** — an account may stream when it is enabled by the
  user and its last known panel status is one StreamForge can stream from
  (``Active``, or ``Unknown`` before the first check).
  :func:`account_may_stream` is the Python form, :func:`streamable_account`
  the SQL form of the same rule; nothing else spells it out.
* **Tuner account** — an account adds its ``max_connections`` to the tuner
  count Plex sees when it is enabled and its panel has said ``Active``: an
  account that never authenticated (``Unknown``, saved with ``--no-check``)
  or failed (``AuthFailed``, ``Expired`` …) adds no tuners.
  :func:`tuner_account` is its SQL form.
* **Published channel** — a guide channel is published (in ``/lineup.json``,
  the M3U, the guide, and tunable at ``/auto/v{n}``) when it is enabled, has
  a GuideNumber and at least one provider stream mapped from a streamable
  account. :func:`published_channel` is its SQL form; the outputs and the
  tune path both select through it, so a channel that is not in the lineup
  answers 404 when tuned.

Both forms are pinned by ``tests/test_db_rules.py`` against the real
database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, select

from streamforge.db.models import Account, ChannelMapping, XmltvChannel, XtreamChannel

STREAMABLE_STATUSES = frozenset({"Active", "Unknown"})
"""Panel statuses an enabled account may stream with."""


def account_may_stream(is_active: bool, status: str | None) -> bool:
    """The streamable-account rule, for values already loaded."""
    return bool(is_active) and status in STREAMABLE_STATUSES


def streamable_account() -> Any:
    """The streamable-account rule as a SQL condition on :class:`Account`."""
    return and_(Account.is_active.is_(True), Account.status.in_(STREAMABLE_STATUSES))


TUNER_STATUSES = frozenset({"Active"})
"""Panel statuses whose accounts count as tuners (known good, not merely not failed)."""


def tuner_account() -> Any:
    """The tuner-account rule as a SQL condition on :class:`Account`."""
    return and_(Account.is_active.is_(True), Account.status.in_(TUNER_STATUSES))


def published_channel() -> Any:
    """The published-channel rule as a SQL condition on :class:`XmltvChannel`."""
    has_stream = exists(
        select(ChannelMapping.id)
        .join(XtreamChannel, XtreamChannel.id == ChannelMapping.xtream_channel_id)
        .join(Account, Account.id == XtreamChannel.account_id)
        .where(ChannelMapping.xmltv_channel_id == XmltvChannel.id)
        .where(streamable_account())
    )
    return and_(
        XmltvChannel.is_enabled.is_(True),
        XmltvChannel.guide_number.is_not(None),
        has_stream,
    )
