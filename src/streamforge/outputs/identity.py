"""The emulated tuner's identity: a persisted DeviceID and the tuner count.

The DeviceID is generated once (valid libhdhomerun check digit) and kept in
``app_state`` so Plex recognises the same tuner across restarts. The tuner
count is the sum of ``max_connections`` of the tuner accounts (enabled and
known good: :func:`~streamforge.db.rules.tuner_account`), unless the
``tuner_count`` setting overrides it.

In a cluster every node is its own device: :func:`for_node` gives an
identity the node's own DeviceID (:func:`~streamforge.outputs.device_id.node_device_id`);
the lineup and guide are the same on every node.
"""

from __future__ import annotations

import dataclasses
import random

from sqlalchemy import func, select

from streamforge.db.engine import Database
from streamforge.db.models import Account
from streamforge.db.rules import tuner_account
from streamforge.outputs.device_id import generate_device_id, is_valid_device_id, node_device_id
from streamforge.outputs.hdhomerun import TunerIdentity
from streamforge.settings import Settings
from streamforge.state import get_state, set_state

DEVICE_ID_KEY = "device_id"
DEVICE_AUTH_KEY = "device_auth"


def device_id(db: Database) -> str:
    stored = get_state(db, DEVICE_ID_KEY)
    if isinstance(stored, str) and is_valid_device_id(stored):
        return stored
    fresh = generate_device_id(random.SystemRandom())
    set_state(db, DEVICE_ID_KEY, fresh)
    return fresh


def device_auth(db: Database) -> str:
    stored = get_state(db, DEVICE_AUTH_KEY)
    if isinstance(stored, str) and stored:
        return stored
    fresh = "".join(
        random.SystemRandom().choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24)
    )
    set_state(db, DEVICE_AUTH_KEY, fresh)
    return fresh


def tuner_count(db: Database, settings: Settings) -> int:
    if settings.tuner_count:
        return settings.tuner_count
    with db.session() as session:
        total = session.scalar(
            select(func.coalesce(func.sum(Account.max_connections), 0)).where(tuner_account())
        )
    return max(int(total or 0), 1)


def tuner_identity(db: Database, settings: Settings, base_url: str) -> TunerIdentity:
    return TunerIdentity(
        device_id=device_id(db),
        base_url=base_url,
        tuner_count=tuner_count(db, settings),
        device_auth=device_auth(db),
        friendly_name=settings.device_name,
    )


def for_node(identity: TunerIdentity, node_id: str | None) -> TunerIdentity:
    """``identity`` with this cluster node's own DeviceID (unchanged on a single node)."""
    if not node_id:
        return identity
    return dataclasses.replace(identity, device_id=node_device_id(identity.device_id, node_id))
