"""The running StreamForge: every long-lived part, built from the settings
and handed to whoever needs it. Nothing is global; tests build as many
runtimes as they like, each on its own data dir and database.

The runtime sits above the services and below the front ends (``web``,
``cli``, ``server``, ``scheduler``, ``demo``): it imports no front end. Two
things the front ends share go through it: :attr:`Runtime.catalog` (what
follows every channel sync and guide import, see
:mod:`streamforge.catalog_updates`) and :meth:`Runtime.apply_settings` (the
one way to change settings at run time, see :mod:`streamforge.live_settings`).

Cluster mode (``STREAMFORGE_REDIS_URL``): :meth:`Runtime.start_cluster`
joins the cluster (:mod:`streamforge.cluster`) once the event loop runs; the
session manager then counts connections cluster-wide and relays channels
other nodes own, and events carry the node id. Every start checks the shared
secret key against the fingerprint in the database
(:func:`streamforge.state.check_secret_key`): a node with another key refuses
to start with one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge

from streamforge import live_settings
from streamforge.admin_auth import AdminAuth
from streamforge.admin_views import AdminViews
from streamforge.catalog_updates import CatalogUpdates
from streamforge.cpu_pool import CpuPool
from streamforge.credentials import CredentialStore
from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.epg.sources import EpgService
from streamforge.epg.xmltv_parse import ImportWindow
from streamforge.errors import ConfigError
from streamforge.events import Event, EventLog
from streamforge.loop_monitor import LoopMonitor
from streamforge.matching.channels import ChannelService
from streamforge.matching.service import MatchService
from streamforge.outputs.guide_cache import GuideCache
from streamforge.settings import Settings
from streamforge.state import check_secret_key
from streamforge.streaming.manager import SessionManager
from streamforge.streaming.metrics import StreamMetrics
from streamforge.streaming.protocol import PolicyConfig
from streamforge.tasks import TaskOwner
from streamforge.xtream.accounts import AccountService
from streamforge.xtream.sync import ChannelSync
from streamforge.xtream.sync_jobs import SyncJobs

if TYPE_CHECKING:
    from streamforge.cluster.service import Cluster

log = logging.getLogger(__name__)


class NodeEvents(EventLog):
    """The event log; in a cluster every event's details name the node (``node``)
    and retention runs on the leader only."""

    node: str | None = None
    leader: Callable[[], bool] | None = None

    def prune(self, now: datetime | None = None) -> int:
        if self.leader is not None and not self.leader():
            return 0
        return super().prune(now)

    def record(
        self,
        level: str,
        category: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        channel_id: int | None = None,
    ) -> Event:
        if self.node is not None:
            details = {**(details or {}), "node": self.node}
        return super().record(level, category, message, details, channel_id=channel_id)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    credentials: CredentialStore
    events: EventLog
    auth: AdminAuth
    accounts: AccountService
    channel_sync: ChannelSync
    sync_jobs: SyncJobs
    epg: EpgService
    channels: ChannelService
    matching: MatchService
    catalog: CatalogUpdates
    views: AdminViews
    streams: SessionManager
    tasks: TaskOwner
    loop_monitor: LoopMonitor
    cpu: CpuPool
    cluster: Cluster | None = None

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        """Open the database (migrating it unless told not to) and start the event writer."""
        settings.ensure_data_dir()
        db = Database(settings.effective_database_url)
        if migrate:
            upgrade(db.engine)
        try:
            credentials = CredentialStore(
                settings.data_dir,
                use_keyring=settings.keyring,
                shared_key=settings.shared_secret_key(),
            )
            check_secret_key(db, credentials)
        except BaseException:
            db.dispose()
            raise
        events = NodeEvents(
            db,
            retention=timedelta(days=settings.event_retention_days),
            max_rows=settings.event_max_rows,
        )
        events.start()
        accounts = AccountService(db, credentials, events, default_user_agent=settings.user_agent)
        # CPU-heavy parsing and matching run in worker processes, off the loop's GIL.
        # Two workers (one core: one), so that a guide parse and a sync's stream list overlap.
        cpu = CpuPool("runtime-cpu", workers=min(2, os.cpu_count() or 1))
        channel_sync = ChannelSync(db, accounts, events, cpu=cpu)
        tasks = TaskOwner("runtime")
        epg = EpgService(
            db,
            accounts,
            events,
            window=ImportWindow(settings.epg_days_back, settings.epg_days_ahead),
            user_agent=settings.user_agent,
            cpu=cpu,
            credentials=credentials,
        )
        if migrate and (sealed := epg.seal_stored_urls()):
            log.warning("sealed %d guide URL(s) that carried credentials in clear", sealed)
        matching = MatchService(db, events, threshold=settings.match_threshold, cpu=cpu)
        catalog = CatalogUpdates(db, epg, matching, events, GuideCache(settings.data_dir / "cache"))
        channels = ChannelService(db, events)
        metrics = StreamMetrics()
        streams = SessionManager(settings, channels, accounts, events, metrics)
        return cls(
            settings=settings,
            db=db,
            credentials=credentials,
            events=events,
            auth=AdminAuth(db, settings.admin_password),
            accounts=accounts,
            channel_sync=channel_sync,
            sync_jobs=SyncJobs(channel_sync, tasks, after_sync=catalog.after_sync),
            epg=epg,
            channels=channels,
            matching=matching,
            catalog=catalog,
            views=AdminViews(db, accounts, epg, channels, matching, events),
            streams=streams,
            tasks=tasks,
            loop_monitor=LoopMonitor(events, metrics.loop_lag),
            cpu=cpu,
        )

    # -- settings at run time ---------------------------------------------------------
    async def apply_settings(
        self, body: Mapping[str, Any], *, origin: str
    ) -> live_settings.SettingsChange:
        """Validate, persist and apply a settings change (``origin`` names who asked).

        Raises :class:`~streamforge.live_settings.SettingsRejected` for a setting
        that cannot change at run time or a value the model refuses; nothing is
        saved then. Live settings apply at once, the others after a restart.
        """
        new, changes = live_settings.plan_change(self.settings, body)
        saved = await self.db.write(live_settings.save_overrides, self.db, new, set(changes))
        live = {k: v for k, v in changes.items() if live_settings.EDITABLE[k]}
        if live:
            self._swap_settings(live_settings.validated_settings(self.settings, live))
        self.events.record(
            "info", "system", f"settings changed {origin}", {"changed": sorted(changes)}
        )
        after_restart = tuple(k for k in changes if not live_settings.EDITABLE[k])
        return live_settings.SettingsChange(new, live, saved, after_restart)

    def restore_saved_settings(self) -> None:
        """Apply the overrides saved at run time (call once, right after :meth:`build`)."""
        restored = live_settings.apply_saved_overrides(self.settings, self.db)
        if restored is not self.settings:
            self._swap_settings(restored)

    def _swap_settings(self, new: Settings) -> None:
        """Swap ``new`` into the running services; sessions started from now on use it."""
        self.settings = new
        self.streams.policy_config = PolicyConfig.from_settings(new)
        self.streams.upstream_config = dataclasses.replace(
            self.streams.upstream_config, stall_timeout=new.stall_timeout
        )

    # -- cluster ----------------------------------------------------------------------
    @property
    def node_id(self) -> str | None:
        """This node's id in a cluster, else None."""
        return None if self.cluster is None else self.cluster.identity.node_id

    async def start_cluster(self, relay_url: str) -> None:
        """Join the cluster when ``STREAMFORGE_REDIS_URL`` is set (else do nothing).

        ``relay_url`` is where the other nodes reach this node's HTTP port. Redis
        unreachable, a node id in use or no shared secret key raise
        :class:`~streamforge.errors.ConfigError` with one line.
        """
        settings = self.settings
        if settings.redis_url is None or self.cluster is not None:
            return
        if self.credentials.fingerprint is None:
            raise ConfigError(
                "cluster mode needs STREAMFORGE_SECRET_KEY (the same on every node) so that "
                "each node can open the stored provider passwords; `streamforge secret rotate` "
                "makes one"
            )
        from streamforge.cluster.redisconn import REDIS_ERRORS, redact_url
        from streamforge.cluster.relaying import ClusterChannels, relay_secret
        from streamforge.cluster.service import Cluster

        try:
            async with asyncio.timeout(settings.lease_ttl * 2 + 5):
                cluster = await Cluster.start(
                    settings,
                    events=self.events,
                    relay_url=relay_url,
                    on_lost_leases=self.streams.leases_lost,
                )
        except REDIS_ERRORS as exc:
            raise ConfigError(
                f"STREAMFORGE_REDIS_URL: Redis at {redact_url(settings.redis_url)} is unreachable "
                f"({type(exc).__name__}); a cluster node does not start without it"
            ) from None
        self.cluster = cluster
        if isinstance(self.events, NodeEvents):
            self.events.node = cluster.identity.node_id
            self.events.leader = self.is_leader
        channels = ClusterChannels(
            cluster.owners,
            cluster.leases,
            cluster.slots,
            cluster.health,
            relay_url=relay_url,
            secret=relay_secret(settings),
        )
        self.streams.use_cluster(cluster.slots, channels)
        self.tasks.spawn(self.streams.keep_ownership(settings.lease_ttl / 3), "channel-ownership")
        info = Gauge(
            "streamforge_node_info",
            "This StreamForge node in its cluster (always 1).",
            ["node", "name"],
            registry=self.streams.metrics.registry,
        )
        info.labels(node=cluster.identity.node_id, name=cluster.identity.name).set(1)
        self.events.record(
            "info",
            "cluster",
            f"node {cluster.identity.name} joined the cluster",
            {"instance": cluster.identity.instance, "relay_url": relay_url},
        )

    def is_leader(self) -> bool:
        """Whether cluster-wide jobs run here: always on a single node, on the
        leader only in a cluster."""
        return self.cluster is None or self.cluster.leader.is_leader

    async def aclose(self) -> None:
        await self.loop_monitor.stop()
        await self.streams.close()
        await self.tasks.close()
        await self.cpu.aclose()
        if self.cluster is not None:
            await self.cluster.aclose()
            self.cluster = None
        self.close()

    def close(self) -> None:
        self.cpu.close()
        self.events.close()
        self.db.dispose()
