"""``streamforge cluster status | join`` and ``streamforge secret rotate``.

``cluster status`` reads Redis directly (the live nodes, the leader, the
connection leases per account, the channel owners), so it works from any
machine that has the cluster's settings, with or without a running node.

``cluster join`` prints what a new node needs: the settings every node
shares (the secret key only with ``--show-secret``) and the ones that must
differ per node.

``secret rotate`` re-seals every stored provider password with a new shared
key in one transaction, stores the new key's fingerprint and prints the key
once. Stop every node first and restart them all with the new key: a node
still running on the old key can no longer open the passwords.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from streamforge.cli.common import console, fail, one_line_errors, open_runtime
from streamforge.errors import ConfigError

if TYPE_CHECKING:
    from streamforge.settings import Settings

cluster_app = typer.Typer(help="Several nodes over one PostgreSQL and Redis.", no_args_is_help=True)
secret_app = typer.Typer(help="The key that seals stored provider passwords.", no_args_is_help=True)


def _cluster_settings() -> Settings:
    from streamforge.settings import load_settings

    settings = load_settings()
    if settings.redis_url is None:
        raise ConfigError("STREAMFORGE_REDIS_URL: not set; this node is not in cluster mode")
    return settings


def _accounts(settings: Settings) -> dict[int, tuple[str, int]]:
    from sqlalchemy import select

    from streamforge.db.engine import Database
    from streamforge.db.models import Account

    database = Database(settings.effective_database_url)
    try:
        with database.session() as session:
            rows = session.execute(select(Account.id, Account.name, Account.max_connections))
            return {int(r.id): (str(r.name), int(r.max_connections)) for r in rows}
    finally:
        database.dispose()


async def _read_status(settings: Settings) -> dict[str, Any]:
    from streamforge.cluster.leader import LeaderLease
    from streamforge.cluster.leases import LeaseStore
    from streamforge.cluster.node import NodeIdentity, NodeRegistry
    from streamforge.cluster.owners import OwnerRecord
    from streamforge.cluster.redisconn import DEFAULT_PREFIX, REDIS_ERRORS, connect, redact_url

    assert settings.redis_url is not None
    redis = connect(settings.redis_url, timeout=3.0)
    reader = NodeIdentity("0" * 16, "status", "cli")  # reads only, never registers
    try:
        nodes = await NodeRegistry(redis, reader, ttl=settings.lease_ttl).live_nodes()
        leader = await LeaderLease(redis, reader, ttl=settings.lease_ttl).leader()
        leases = await LeaseStore(redis, ttl=settings.lease_ttl).snapshot()
        head = f"{DEFAULT_PREFIX}owner:"
        owners: list[OwnerRecord] = []
        async for key in redis.scan_iter(f"{head}*"):
            tail = str(key)[len(head) :]
            raw = await redis.get(key)
            if tail.isdigit() and raw is not None:
                record = OwnerRecord.decode(int(tail), str(raw))
                if record is not None:
                    owners.append(record)
    except REDIS_ERRORS as exc:
        raise ConfigError(
            f"STREAMFORGE_REDIS_URL: Redis at {redact_url(settings.redis_url)} is unreachable "
            f"({type(exc).__name__})"
        ) from None
    finally:
        await redis.aclose()
    names = {node.node_id: node.name for node in nodes}
    return {
        "leader": leader,
        "nodes": [
            {
                "id": n.node_id,
                "name": n.name,
                "instance": n.instance,
                "relay_url": n.relay_url,
                "leader": n.node_id == leader,
                "expires_in": n.expires_in,
            }
            for n in nodes
        ],
        "leases": {
            aid: [{"node": h.node_id, "node_name": names.get(h.node_id)} for h in held]
            for aid, held in leases.items()
        },
        "owners": [
            {"channel_id": o.channel_id, "node": o.node_id, "node_name": names.get(o.node_id)}
            for o in sorted(owners, key=lambda o: o.channel_id)
        ],
    }


@cluster_app.command("status")
@one_line_errors
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The live nodes, the leader, connection leases per account and channel owners."""
    settings = _cluster_settings()
    found = asyncio.run(_read_status(settings))
    accounts = _accounts(settings)
    found["accounts"] = [
        {
            "id": aid,
            "name": name,
            "max_connections": cap,
            "leased": len(found["leases"].get(aid, [])),
            "by_node": sorted(h["node_name"] or h["node"] for h in found["leases"].get(aid, [])),
        }
        for aid, (name, cap) in sorted(accounts.items())
    ]
    if as_json:
        console.print_json(json.dumps(found, default=str))
        return
    nodes = Table("node", "name", "leader", "relay URL", "expires in")
    for n in found["nodes"]:
        nodes.add_row(
            n["id"], n["name"], "yes" if n["leader"] else "", n["relay_url"] or "—",
            f"{n['expires_in']:.1f} s",
        )  # fmt: skip
    console.print(nodes)
    leases = Table("account", "leased", "max", "held by")
    for a in found["accounts"]:
        leases.add_row(
            a["name"], str(a["leased"]), str(a["max_connections"]), ", ".join(a["by_node"])
        )
    console.print(leases)
    if found["owners"]:
        owners = Table("channel id", "owner node")
        for o in found["owners"]:
            owners.add_row(str(o["channel_id"]), o["node_name"] or o["node"])
        console.print(owners)
    else:
        console.print("no channel is playing on the cluster")


@cluster_app.command("join")
@one_line_errors
def join(
    show_secret: bool = typer.Option(
        False, "--show-secret", help="Print the secret key and passwords (else they are hidden)."
    ),
) -> None:
    """Print the settings a new node needs to join this cluster."""
    settings = _cluster_settings()
    key = settings.shared_secret_key()
    if key is None:
        raise fail(
            "this cluster has no STREAMFORGE_SECRET_KEY yet: run `streamforge secret rotate` "
            "once, then give every node the key it prints"
        )
    from streamforge.cluster.redisconn import redact_url
    from streamforge.credentials import key_fingerprint

    def shown(value: str, redacted: str) -> str:
        return value if show_secret else redacted

    database, redis = settings.database_url or "", settings.redis_url or ""
    hidden = "<hidden: --show-secret>"
    lines = [
        "# the same on every node",
        f"STREAMFORGE_DATABASE_URL={shown(database, redact_url(database))}",
        f"STREAMFORGE_REDIS_URL={shown(redis, redact_url(redis))}",
        f"STREAMFORGE_SECRET_KEY={shown(base64.b64encode(key).decode(), hidden)}",
        f"STREAMFORGE_LEASE_TTL={settings.lease_ttl:g}",
    ]
    if settings.cluster_secret is not None:
        relay = settings.cluster_secret.get_secret_value()
        lines.append(f"STREAMFORGE_CLUSTER_SECRET={shown(relay, hidden)}")
    lines += [
        "# its own on each node",
        "STREAMFORGE_DATA_DIR=<a directory of its own (holds the node id)>",
        "STREAMFORGE_NODE_NAME=<a name for the new node>",
        "# then: streamforge serve   (key fingerprint " + key_fingerprint(key) + ")",
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)


@secret_app.command("rotate")
@one_line_errors
def rotate(
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Re-seal every stored secret with a new shared key (printed once)."""
    if not yes:
        typer.confirm(
            "Stop every node first; after the rotation they all need the new key. Rotate now?",
            abort=True,
        )
    from streamforge.credentials import CredentialStore, generate_secret_key, key_fingerprint
    from streamforge.state import rotate_secret_key

    fresh = generate_secret_key()
    with open_runtime() as runtime:
        new = CredentialStore(runtime.settings.data_dir, shared_key=fresh)
        count = rotate_secret_key(runtime.db, runtime.credentials, new)
    console.print(
        f"re-sealed {count} stored secret(s); new key fingerprint {key_fingerprint(fresh)}"
    )
    console.print(
        "New secret key (shown once; set it on every node, then restart them):",
        highlight=False,
    )
    console.print(
        f"STREAMFORGE_SECRET_KEY={base64.b64encode(fresh).decode()}", highlight=False, markup=False
    )
