"""Two real `streamforge serve` nodes over one PostgreSQL and one Redis.

Everything is real: Debian's redis-server (tests/redisfix.py), a private
PostgreSQL (tests/pg.py), the mock provider (account ``alpha``, at most 2
connections; ``beta``, 1) and two node processes on loopback with separate
data dirs and a shared secret key. One setup serves the whole module; the
tests run in order and leave the cluster as they found it (nothing playing).

What the module pins (issues 17 and 19): the provider never sees more than
``max_connections`` across the nodes (its connection log, replayed, and its
open connections, polled); the third tune answers 805; one channel on both
nodes is one provider connection (relayed), and killing its owner leaves the
other node's viewer with a decodable stream after a short failover; a killed
node's leases free within the TTL; the scheduled sync runs on one node;
Redis stopped and restarted mid-run costs no stream and no limit; the nodes
share sealed passwords and UI sessions; a wrong key is refused in one line;
a key rotation keeps every account usable.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import httpx
import psycopg
import pytest
from redis import Redis as SyncRedis
from sqlalchemy import select

from streamforge.db.engine import Database
from streamforge.db.models import EventLogEntry
from streamforge.mockprovider import Catalog, MediaLibrary, MockProviderThread
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from tests.netutil import free_port
from tests.redisfix import RedisServer

TTL = 3.0
ADMIN = ("admin", "cluster-admin-pw")
SRC = str(Path(__file__).resolve().parent.parent / "src")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def wait_for(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Poll ``predicate`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.05)
    return time.monotonic() - started


async def await_for(predicate: Callable[[], bool], within: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# --------------------------------------------------------------------------- the nodes
@dataclass
class Node:
    name: str
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streamforge", "serve", "--host", "127.0.0.1",
                "--port", str(self.port)]  # fmt: skip

    def start(self) -> None:
        self.log = self.data_dir.parent / f"{self.name}.log"
        handle = self.log.open("a")
        self.proc = subprocess.Popen(
            self.command(), env=self.env, stdout=handle, stderr=subprocess.STDOUT, text=True
        )
        handle.close()
        wait_for(self._healthy, 40, f"node {self.name} healthy")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"node {self.name} exited: {self.output()}")
        try:
            answer = httpx.get(f"{self.url}/healthz", timeout=1)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json().get("cluster") is True

    def output(self) -> str:
        return self.log.read_text() if self.log is not None and self.log.exists() else ""

    def health(self) -> dict[str, Any]:
        node: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=5).json()["node"]
        return node

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/v1{path}", auth=ADMIN, timeout=30, **kwargs)


class PeakWatch:
    """Polls the provider's open connections of an account on a thread; keeps the peak."""

    def __init__(self, provider: MockProviderThread, account: str) -> None:
        self.provider = provider
        self.account = account
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.provider.stats().open_connections(account=self.account)
            self.peak = max(self.peak, now)
            self._stop.wait(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def log_peak(provider: MockProviderThread, account: str) -> int:
    """Most connections of ``account`` ever open at once, replayed from the provider's log."""
    level = peak = 0
    for event in sorted(provider.stats().events, key=lambda e: (e.at, e.event != "close")):
        if event.account != account:
            continue
        level += 1 if event.event == "open" else -1
        peak = max(peak, level)
    return peak


@dataclass
class Cluster:
    a: Node
    b: Node
    provider: MockProviderThread
    redis: RedisServer
    database_url: str
    key: str
    watch: PeakWatch
    channels: list[str]
    base_env: dict[str, str]
    figures: dict[str, float] = field(default_factory=dict)

    def open_alpha(self) -> int:
        return self.provider.stats().open_connections(account="alpha")

    def leases(self, account_id: int = 1) -> list[str]:
        with SyncRedis.from_url(self.redis.url, socket_timeout=5, decode_responses=True) as r:
            now_ms = int(float(r.time()[0]) * 1000 + r.time()[1] / 1000)
            members = r.zrangebyscore(f"streamforge:lease:{account_id}", now_ms, "+inf")
        return [str(m) for m in members]

    def idle(self) -> None:
        """Nothing playing anywhere (viewers gone, sessions ended, leases back)."""
        wait_for(lambda: self.open_alpha() == 0, 15, "provider connections closed")
        wait_for(lambda: not self.leases(), 15, "leases released")


def _create_database(server_url: str) -> str:
    name = f"sf_cluster_{secrets.token_hex(4)}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _prepare(database_url: str, data_dir: Path, key: str, provider_url: str) -> None:
    """The schema, the admin password, account alpha (tested: its connection limit is
    known; never synced) and its guide."""
    settings = load_settings(
        data_dir=data_dir, database_url=database_url, secret_key=key, keyring=False
    )
    runtime = Runtime.build(settings)
    try:
        runtime.auth.set_password(ADMIN[1])

        async def add() -> None:
            result = await runtime.accounts.add(
                "alpha", server_url=provider_url, username="alpha", password="alpha-secret",
            )  # fmt: skip
            assert result.ok, result.message

        asyncio.run(add())
        runtime.epg.add("alpha-guide", from_account="alpha")
    finally:
        runtime.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_session_server: RedisServer,
    mock_media: MediaLibrary,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    redis_session_server.start()
    with SyncRedis.from_url(redis_session_server.url, socket_timeout=5) as client:
        client.flushall()
    database_url = _create_database(postgres_url)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    with MockProviderThread(Catalog.demo(), host="127.0.0.1", port=0, media=mock_media) as mp:
        _prepare(database_url, root / "setup", key, mp.base_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
        env.update(
            PYTHONPATH=SRC,
            STREAMFORGE_DATABASE_URL=database_url,
            STREAMFORGE_REDIS_URL=redis_session_server.url,
            STREAMFORGE_SECRET_KEY=key,
            STREAMFORGE_LEASE_TTL=str(TTL),
            STREAMFORGE_KEYRING="false",
            STREAMFORGE_DISCOVERY_ENABLED="false",
            STREAMFORGE_SSDP_ENABLED="false",
            STREAMFORGE_SESSION_LINGER="0",
        )
        nodes = []
        for name in ("node-a", "node-b"):
            data = root / name
            data.mkdir()
            nodes.append(
                Node(
                    name,
                    data,
                    {**env, "STREAMFORGE_DATA_DIR": str(data), "STREAMFORGE_NODE_NAME": name},
                )
            )
        a, b = nodes
        watch = PeakWatch(mp, "alpha")
        try:
            a.start()
            b.start()

            def lineup() -> list[str]:
                rows = httpx.get(f"{a.url}/lineup.json", timeout=10).json()
                return [str(row["GuideNumber"]) for row in rows]

            wait_for(lambda: len(lineup()) >= 3, 60, "the leader's scheduled sync and import")
            found = Cluster(a, b, mp, redis_session_server, database_url, key, watch, lineup(), env)
            yield found
            # the measured figures, for the record (docs/scaling.md quotes them)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "cluster-figures.json").write_text(json.dumps(found.figures, indent=1))
        finally:
            watch.close()
            for node in nodes:
                node.stop()


# --------------------------------------------------------------------------- viewers
class Viewer:
    """One client of ``/auto/v{n}``: the status and every chunk with its arrival time."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[tuple[float, bytes]] = []
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Viewer:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="viewer")
        await asyncio.wait_for(self.opened.wait(), 20)
        return self

    async def _run(self) -> None:
        try:
            async with self.http.get(self.url) as response:
                self.status = response.status
                self.headers = {k.lower(): v for k, v in response.headers.items()}
                if response.status != 200:
                    return
                async for chunk in response.content.iter_any():
                    self.chunks.append((time.monotonic(), chunk))
                    self.opened.set()
        except aiohttp.ClientError:
            return
        finally:
            self.opened.set()

    def received_since(self, t: float) -> bytes:
        return b"".join(chunk for at, chunk in self.chunks if at >= t)

    def largest_gap_after(self, t: float) -> float:
        times = [t] + [at for at, _ in self.chunks if at >= t]
        return max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else 0

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def video_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        return len(list(container.decode(video=0)))


def tune(node: Node, guide_number: str) -> str:
    return f"{node.url}/auto/v{guide_number}"


# --------------------------------------------------------------------------- tests
def test_scheduled_sync_ran_on_exactly_one_node(cluster: Cluster) -> None:
    database = Database(cluster.database_url)
    try:
        with database.session() as session:
            synced = [
                e.details.get("node")
                for e in session.scalars(
                    select(EventLogEntry).where(EventLogEntry.message.like("synced 'alpha'%"))
                )
            ]
    finally:
        database.dispose()
    ids = {cluster.a.health()["id"], cluster.b.health()["id"]}
    assert len(synced) == 1, synced
    assert synced[0] in ids
    leaders = [n.health()["leader"] for n in (cluster.a, cluster.b)]
    assert sorted(leaders) == [False, True]


def test_each_node_is_its_own_hdhomerun_device_with_the_same_lineup(cluster: Cluster) -> None:
    discover = [httpx.get(f"{n.url}/discover.json").json() for n in (cluster.a, cluster.b)]
    assert discover[0]["DeviceID"] != discover[1]["DeviceID"]
    lineups = [
        [(r["GuideNumber"], r["GuideName"]) for r in httpx.get(f"{n.url}/lineup.json").json()]
        for n in (cluster.a, cluster.b)
    ]
    assert lineups[0] == lineups[1]
    metrics = httpx.get(f"{cluster.b.url}/metrics").text
    assert (
        f'streamforge_node_info{{name="node-b",node="{cluster.b.health()["id"]}"}} 1.0' in metrics
    )


ORDERS = ["AAB", "ABA", "BAA", "ABB", "BAB", "BBA"]


async def test_limit_holds_across_nodes_in_every_order(cluster: Cluster) -> None:
    nodes = {"A": cluster.a, "B": cluster.b}
    first, second, third = cluster.channels[:3]
    async with aiohttp.ClientSession() as http:
        for order in ORDERS:
            viewers = []
            for letter, channel in zip(order[:2], (first, second), strict=True):
                viewers.append(await Viewer(http, tune(nodes[letter], channel)).start())
            assert [v.status for v in viewers] == [200, 200], (
                order,
                cluster.leases(),
                cluster.a.health(),
                [s["timeline"] for s in cluster.a.api("GET", "/sessions").json()],
            )
            refused = await Viewer(http, tune(nodes[order[2]], third)).start()
            assert refused.status == 503, order
            error = refused.headers.get("x-hdhomerun-error", "")
            assert error.startswith("805"), (order, refused.headers, cluster.leases())
            assert cluster.open_alpha() <= 2
            assert len(cluster.leases()) == 2
            for viewer in viewers:
                await viewer.close()
            await asyncio.to_thread(cluster.idle)
    assert cluster.watch.peak <= 2
    assert log_peak(cluster.provider, "alpha") <= 2


async def test_one_channel_on_both_nodes_is_one_connection_and_survives_its_owner(
    cluster: Cluster,
) -> None:
    channel = cluster.channels[0]
    a_id = cluster.a.health()["id"]
    async with aiohttp.ClientSession() as http:
        on_a = await Viewer(http, tune(cluster.a, channel)).start()
        on_b = await Viewer(http, tune(cluster.b, channel)).start()
        assert (on_a.status, on_b.status) == (200, 200)
        sessions = cluster.b.api("GET", "/sessions").json()
        assert [s["stream"] for s in sessions] == ["relay from node " + a_id]
        await asyncio.sleep(1.0)  # let both play a moment on one connection
        assert cluster.open_alpha() == 1
        assert cluster.watch.peak <= 2
        killed = time.monotonic()
        cluster.a.kill()
        # The killed node's leases drop out within the TTL.
        await asyncio.to_thread(
            wait_for,
            lambda: not [lid for lid in cluster.leases() if lid.startswith(a_id)],
            TTL + 1,
            "the killed node's leases expire",
        )
        took = time.monotonic() - killed
        cluster.figures["owner_killed_leases_freed_s"] = round(took, 3)
        assert took <= TTL + 1
        # B fails over onto its own upstream; the viewer keeps a valid stream.
        await await_for(
            lambda: len(on_b.received_since(killed + TTL + 2)) > 400_000, 30, "B plays on"
        )
        gap = on_b.largest_gap_after(killed)
        cluster.figures["owner_killed_gap_s"] = round(gap, 3)
        assert gap <= TTL + 2, gap
        assert video_frames(on_b.received_since(killed)) > 10
        assert cluster.open_alpha() == 1  # B's own upstream only
        await on_b.close()
        await on_a.close()
    await asyncio.to_thread(cluster.idle)
    await asyncio.to_thread(cluster.a.start)
    assert log_peak(cluster.provider, "alpha") <= 2


async def test_leases_of_a_killed_node_free_within_the_ttl(cluster: Cluster) -> None:
    a_id = cluster.a.health()["id"]
    async with aiohttp.ClientSession() as http:
        viewers = [await Viewer(http, tune(cluster.a, ch)).start() for ch in cluster.channels[:2]]
        assert [v.status for v in viewers] == [200, 200]
        assert len([lid for lid in cluster.leases() if lid.startswith(a_id)]) == 2
        killed = time.monotonic()
        cluster.a.kill()
        await asyncio.to_thread(wait_for, lambda: not cluster.leases(), TTL + 1, "leases free")
        took = time.monotonic() - killed
        cluster.figures["killed_node_2_leases_freed_s"] = round(took, 3)
        assert took <= TTL + 1
        # the other node can take the connections at once
        on_b = await Viewer(http, tune(cluster.b, cluster.channels[2])).start()
        assert on_b.status == 200
        await on_b.close()
        for viewer in viewers:
            await viewer.close()
    await asyncio.to_thread(cluster.idle)
    await asyncio.to_thread(cluster.a.start)


async def test_redis_outage_keeps_streams_opens_nothing_and_reconciles(cluster: Cluster) -> None:
    first, second, third = cluster.channels[:3]
    async with aiohttp.ClientSession() as http:
        on_a = await Viewer(http, tune(cluster.a, first)).start()
        on_b = await Viewer(http, tune(cluster.b, second)).start()
        assert (on_a.status, on_b.status) == (200, 200)
        cluster.redis.stop()
        down = time.monotonic()
        await await_for(
            lambda: not cluster.a.health()["redis_ok"] and not cluster.b.health()["redis_ok"],
            2 * TTL,
            "both nodes notice the outage",
        )
        refused = await Viewer(http, tune(cluster.b, third)).start()
        assert refused.status == 503
        assert cluster.open_alpha() == 2
        cluster.redis.start()  # back, and empty
        cluster.figures["redis_back_leases_readded_s"] = round(
            await asyncio.to_thread(
                wait_for, lambda: len(cluster.leases()) == 2, 2 * TTL, "leases re-added"
            ),
            3,
        )
        await await_for(
            lambda: cluster.a.health()["redis_ok"] and cluster.b.health()["redis_ok"],
            2 * TTL,
            "both nodes recover",
        )
        for viewer in (on_a, on_b):  # played on through the outage and the recovery

            def played_on(v: Viewer = viewer) -> bool:
                return v.chunks[-1][0] - down > 4.0

            await await_for(played_on, 10, "4 s of playback since the outage began")
            assert viewer.largest_gap_after(down) < 2.0
            assert viewer.chunks[-1][0] > time.monotonic() - 1.5
            assert video_frames(viewer.received_since(down)) > 10
        assert cluster.a.proc is not None
        assert cluster.a.proc.poll() is None
        assert cluster.b.proc is not None
        assert cluster.b.proc.poll() is None
        await on_a.close()
        await on_b.close()
    await asyncio.to_thread(cluster.idle)
    assert cluster.watch.peak <= 2
    assert log_peak(cluster.provider, "alpha") <= 2


# --------------------------------------------------------------------------- issue 19
def _login(node: Node) -> httpx.Client:
    client = httpx.Client(base_url=node.url, timeout=10)
    page = client.get("/ui/login")
    token = page.cookies.get("sf_login_csrf") or client.cookies.get("sf_login_csrf")
    answer = client.post("/ui/login", data={"password": ADMIN[1], "csrf": token, "next": "/ui/"})
    assert answer.status_code == 303, answer.text
    return client


def test_a_ui_session_from_one_node_is_accepted_by_the_other(cluster: Cluster) -> None:
    on_a = _login(cluster.a)
    try:
        cookie = on_a.cookies.get("sf_session")
        assert cookie
        assert on_a.get("/ui/").status_code == 200
    finally:
        on_a.close()
    with httpx.Client(base_url=cluster.b.url, timeout=10) as on_b:
        on_b.cookies.set("sf_session", cookie)
        page = on_b.get("/ui/", follow_redirects=False)
        assert page.status_code == 200
        assert "Cluster node" in page.text
        assert "<strong>node-b</strong>" in page.text
        assert on_b.get("/api/v1/status").json()["node"]["name"] == "node-b"


async def _stream_briefly(node: Node, guide_number: str, quality: str | None = None) -> bytes:
    url = tune(node, guide_number) + (f"?quality={quality}" if quality else "")
    async with aiohttp.ClientSession() as http:
        viewer = await Viewer(http, url).start()
        assert viewer.status == 200, (node.name, viewer.status, viewer.headers)
        await await_for(lambda: sum(len(c) for _, c in viewer.chunks) > 300_000, 20, "data")
        await viewer.close()
    return b"".join(c for _, c in viewer.chunks)


async def test_both_nodes_stream_an_account_added_through_the_first(cluster: Cluster) -> None:
    added = cluster.a.api(
        "POST",
        "/accounts",
        json={
            "name": "beta",
            "server_url": cluster.provider.base_url,
            "username": "beta",
            "password": "beta-secret",
        },
    )
    assert added.status_code == 201, added.text
    assert cluster.a.api("POST", "/accounts/beta/sync").status_code == 202
    await await_for(
        lambda: cluster.a.api("GET", "/accounts/beta/sync").json().get("state") == "done",
        30,
        "beta synced",
    )
    assert cluster.a.api("POST", "/match").status_code == 200
    channel = cluster.channels[0]
    # ?quality=sd: only beta's SD stream qualifies, and a capped session reads its own upstream
    for node in (cluster.a, cluster.b):
        data = await _stream_briefly(node, channel, "sd")
        assert video_frames(data) > 10
        await asyncio.to_thread(
            wait_for,
            lambda: cluster.provider.stats().open_connections(account="beta") == 0,
            15,
            "beta closed",
        )
    assert log_peak(cluster.provider, "beta") <= 1


def test_a_node_with_another_key_refuses_to_start_in_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    data = tmp_path / "node-c"
    data.mkdir(mode=0o700)
    data.chmod(0o700)  # nothing to tighten: the only output is the refusal
    env = {**cluster.base_env, "STREAMFORGE_DATA_DIR": str(data), "STREAMFORGE_SECRET_KEY": wrong}
    node = Node("node-c", data, env)
    done = subprocess.run(node.command(), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "this node's secret key does not match the cluster's: fingerprint " in lines[0]
    assert "expected " in lines[0]
    assert "Traceback" not in done.stderr


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.base_env, "STREAMFORGE_DATA_DIR": str(cluster.a.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "streamforge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cluster_status_and_join_commands(cluster: Cluster) -> None:
    with httpx.stream("GET", tune(cluster.b, cluster.channels[1]), timeout=20) as playing:
        assert playing.status_code == 200
        body = playing.iter_bytes()  # kept: dropping the iterator would hang up
        next(body)
        done = _cli(cluster, "cluster", "status", "--json")
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
    assert sorted(n["name"] for n in status["nodes"]) == ["node-a", "node-b"]
    assert sum(n["leader"] for n in status["nodes"]) == 1
    alpha = next(a for a in status["accounts"] if a["name"] == "alpha")
    assert (alpha["leased"], alpha["max_connections"], alpha["by_node"]) == (1, 2, ["node-b"]), (
        status
    )
    assert [o["node_name"] for o in status["owners"]] == ["node-b"]
    hidden = _cli(cluster, "cluster", "join")
    assert hidden.returncode == 0, hidden.stderr
    assert cluster.key not in hidden.stdout
    assert "STREAMFORGE_SECRET_KEY=<hidden: --show-secret>" in hidden.stdout
    shown = _cli(cluster, "cluster", "join", "--show-secret")
    assert f"STREAMFORGE_SECRET_KEY={cluster.key}" in shown.stdout
    assert f"STREAMFORGE_REDIS_URL={cluster.redis.url}" in shown.stdout
    cluster.idle()


async def test_key_rotation_keeps_every_account_usable(cluster: Cluster) -> None:
    for node in (cluster.a, cluster.b):
        node.stop()
    done = await asyncio.to_thread(_cli, cluster, "secret", "rotate", "--yes")
    assert done.returncode == 0, done.stderr
    assert "re-sealed 2 stored secret(s)" in done.stdout
    new_key = done.stdout.split("STREAMFORGE_SECRET_KEY=", 1)[1].split()[0]
    assert new_key != cluster.key
    for node in (cluster.a, cluster.b):
        node.env["STREAMFORGE_SECRET_KEY"] = new_key
        await asyncio.to_thread(node.start)
    cluster.base_env["STREAMFORGE_SECRET_KEY"] = new_key
    channel = cluster.channels[0]
    assert video_frames(await _stream_briefly(cluster.a, channel)) > 10  # alpha
    await asyncio.to_thread(cluster.idle)
    assert video_frames(await _stream_briefly(cluster.b, channel, "sd")) > 10  # beta
