"""A newcomer's first minutes with the command line: it answers at once, prints
results rather than the process log, refuses accounts and guides that do not work
before saving them, says how to give a password without a terminal, finds the
demo's data and shows the mock panel's accounts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streamforge import events
from streamforge.cli import demo as cli_demo
from streamforge.cli.common import head_revisions
from streamforge.cli.main import LEVELS, app
from streamforge.db import migrate
from streamforge.demo import DEMO_RECOVERY_PERIOD, data_directory, demo_settings, run_demo
from streamforge.errors import ConfigError, ConflictError, NotFoundError
from streamforge.mockprovider import MediaLibrary, MockProviderThread
from streamforge.outputs.identity import tuner_count
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from tests.netutil import free_port

HEAVY = ("aiohttp", "av", "numpy", "sqlalchemy", "fastapi", "uvicorn", "alembic", "httpx")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    return data_dir


def streamforge(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m streamforge ARGS`` as a child process (what a user runs)."""
    return subprocess.run(
        [sys.executable, "-m", "streamforge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def invoke(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin)


# -- 1. start time: what --version and --help import -----------------------------------


@pytest.mark.parametrize(
    ("args", "heavy"),
    [
        (["--version"], (*HEAVY, "pydantic")),
        (["--help"], (*HEAVY, "pydantic")),
        # typer itself converts a command's parameters with pydantic.
        (["account", "--help"], HEAVY),
        (["mock-provider", "--help"], ("sqlalchemy", "fastapi", "uvicorn", "alembic")),
    ],
)
def test_version_and_help_import_no_heavy_package(args: list[str], heavy: tuple[str, ...]) -> None:
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['streamforge', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('streamforge', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"


def test_help_lists_the_lazy_mock_provider_and_runs_it() -> None:
    listed = invoke("--help")
    assert listed.exit_code == 0
    assert "mock-provider" in listed.output
    assert "fault-injecting mock Xtream" in listed.output
    sub = invoke("mock-provider", "--help")
    assert sub.exit_code == 0, sub.output
    for command in ("serve", "fault", "recover", "kill", "stats"):
        assert command in sub.output


def test_cli_copies_stay_equal_to_their_sources() -> None:
    assert LEVELS == events.LEVELS
    assert cli_demo.DEMO_RECOVERY_PERIOD == DEMO_RECOVERY_PERIOD
    assert head_revisions(migrate.MIGRATIONS_DIR / "versions") == {migrate.head_revision()}


def test_read_only_commands_migrate_a_fresh_database(cli_env: Path) -> None:
    for args in (["events"], ["account", "list", "--json"], ["channel", "list", "--json"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    assert json.loads(invoke("account", "list", "--json").output) == []
    rt = Runtime.build(load_settings(), migrate=False)
    try:
        assert migrate.current_revision(rt.db.engine) == migrate.head_revision()
    finally:
        rt.close()


# -- 2. quiet by default -------------------------------------------------------------------


def test_commands_print_results_not_the_log(
    data_dir: Path, mock_provider_thread: MockProviderThread
) -> None:
    env = {"STREAMFORGE_DATA_DIR": str(data_dir), "STREAMFORGE_KEYRING": "false"}
    base = mock_provider_thread.base_url
    added = streamforge(
        *("account", "add", "alpha", "--server", base, "--username", "alpha"),
        "--password-stdin",
        env=env,
        stdin="alpha-secret\n",
    )
    assert added.returncode == 0, added.stderr
    assert "account 'alpha' added: ok: Active" in added.stdout
    assert "INFO" not in added.stderr
    # Warnings still show, as one short line each (the fixture's data dir is 0755).
    assert all(line.startswith("WARNING: ") for line in added.stderr.splitlines())
    synced = streamforge("account", "sync", "alpha", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "alpha: 6 streams" in synced.stdout
    assert "INFO" not in synced.stderr + synced.stdout
    verbose = streamforge("-v", "account", "test", "alpha", env=env)
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO streamforge.events" in verbose.stderr


# -- 3. account add checks before it saves -------------------------------------------------


class _NotAPanel(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def not_a_panel() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAPanel)
    thread = threading.Thread(target=server.serve_forever, name="not-a-panel", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_account_add_refuses_what_does_not_work(
    cli_env: Path, mock_provider_thread: MockProviderThread, not_a_panel: str
) -> None:
    base = mock_provider_thread.base_url
    cases = {
        "wrong password": (base, "alpha", "wrong", "wrong username or password"),
        "dead port": (f"http://127.0.0.1:{free_port()}", "alpha", "x", "cannot reach"),
        "not a panel": (not_a_panel, "alpha", "x", "not"),
    }
    for case, (server, username, password, said) in cases.items():
        result = invoke(
            *("account", "add", "bad1", "--server", server, "--username", username),
            "--password-stdin",
            stdin=f"{password}\n",
        )
        assert result.exit_code == 1, case
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (case, result.output)
        assert lines[0].startswith("error: account 'bad1' not saved: "), case
        assert said in lines[0], (case, lines[0])
        assert "*** username" not in lines[0]
        assert json.loads(invoke("account", "list", "--json").output) == [], case
    kept = invoke(
        *("account", "add", "bad1", "--server", base, "--username", "alpha", "--no-check"),
        "--password-stdin",
        stdin="wrong\n",
    )
    assert kept.exit_code == 0, kept.output
    assert [a["name"] for a in json.loads(invoke("account", "list", "--json").output)] == ["bad1"]


async def test_only_accounts_known_good_count_as_tuners(
    runtime: Runtime, mock_provider_thread: MockProviderThread
) -> None:
    base = mock_provider_thread.base_url
    await runtime.accounts.add(
        "never", server_url=base, username="alpha", password="alpha-secret", test=False
    )
    await runtime.accounts.add("refused", server_url=base, username="alpha", password="wrong")
    assert [a.status for a in runtime.accounts.all()] == ["Unknown", "AuthFailed"]
    assert tuner_count(runtime.db, runtime.settings) == 1  # the floor: nothing counts
    await runtime.accounts.add("good", server_url=base, username="alpha", password="alpha-secret")
    assert tuner_count(runtime.db, runtime.settings) == 2  # alpha's max_connections


def test_api_save_with_check_stores_nothing_on_failure(
    admin: Any, mock_provider_thread: MockProviderThread
) -> None:
    body = {
        "name": "bad1",
        "server_url": mock_provider_thread.base_url,
        "username": "alpha",
        "password": "wrong",
        "check": True,
    }
    refused = admin.post("/api/v1/accounts", json=body)
    assert refused.status_code == 502
    assert "account 'bad1' not saved: wrong username or password" in refused.json()["error"]
    assert admin.get("/api/v1/accounts").json() == []
    saved = admin.post("/api/v1/accounts", json={**body, "password": "alpha-secret"})
    assert saved.status_code == 201
    assert saved.json()["ok"] is True


# -- 4. no terminal, no password -------------------------------------------------------------


def test_no_terminal_says_use_password_stdin(cli_env: Path) -> None:
    for args in (
        ["account", "add", "a", "--server", "http://127.0.0.1:9", "--username", "u"],
        ["admin", "set-password"],
    ):
        result = invoke(*args)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert "--password-stdin" in lines[0]
        assert "Aborted" not in result.output
    for args in (["account", "remove", "a"], ["epg", "remove", "g"]):
        refused = invoke(*args)
        assert refused.exit_code == 1
        assert refused.output.strip() == (
            "error: no terminal to confirm on: add --yes to remove without asking"
        )
    child = streamforge(
        *("account", "add", "a", "--server", "http://127.0.0.1:9", "--username", "u"),
        env={"STREAMFORGE_DATA_DIR": str(cli_env), "STREAMFORGE_KEYRING": "false"},
    )
    assert child.returncode == 1
    assert "GetPassWarning" not in child.stderr
    assert child.stderr.strip().splitlines() == [
        "error: no terminal to ask for the password: pipe it in with --password-stdin"
    ]


# -- 6. epg add of something that is not a guide ---------------------------------------------


def test_epg_add_of_a_file_that_is_not_a_guide(cli_env: Path, tmp_path: Path) -> None:
    junk = tmp_path / "notes.xml"
    junk.write_text("this is not XMLTV at all\n", encoding="utf-8")
    result = invoke("epg", "add", "junk", "--file", str(junk))
    assert result.exit_code == 1
    assert "error: junk: " in result.output
    assert "guide source 'junk' not saved" in result.output
    assert json.loads(invoke("epg", "list", "--json").output) == []


# -- 7. the CLI sees the demo, which never touches the default data dir ------------------


async def test_demo_keeps_a_named_dir_the_cli_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mock_media: MediaLibrary
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(key, raising=False)
    announced: list[dict[str, Any]] = []
    reachable: list[bool] = []
    ready = asyncio.Event()
    stop = asyncio.Event()
    port = free_port()

    def announce(info: dict[str, Any]) -> None:
        # Announced once the server accepts connections: connecting works right now.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            reachable.append(True)
        announced.append(info)
        ready.set()

    with data_directory(None) as directory:
        settings = demo_settings(
            directory,
            host="127.0.0.1",
            port=port,
            recovery_period=20,
            discovery_enabled=False,
            ssdp_enabled=False,
        )
        task = asyncio.get_running_loop().create_task(
            run_demo(settings, announce=announce, media=mock_media, stop=stop), name="demo-dir"
        )
        try:
            async with asyncio.timeout(60):
                await ready.wait()
        finally:
            stop.set()
            async with asyncio.timeout(20):
                await task
    assert directory == home / ".cache" / "streamforge" / "demo"
    assert reachable == [True]
    info = announced[0]
    assert info["data_dir"] == str(directory)
    assert info["cli"] == f"STREAMFORGE_DATA_DIR={directory} streamforge events"
    assert not (home / ".local").exists()
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(directory))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    shown = invoke("events", "--category", "account")
    assert shown.exit_code == 0, shown.output
    assert "account 'alpha' added" in shown.output
    assert "bbcone.uk" in invoke("channel", "show", "bbcone.uk").output


# -- 8. mock-provider serve prints its accounts; requests are logged with -v only ---------


def _serve_mock(media: MediaLibrary, *extra: str) -> tuple[list[str], str]:
    """Run ``streamforge mock-provider serve``, read its account lines, make one
    request, stop it; returns (stdout lines, stderr)."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamforge", "mock-provider", "serve", "--port", "0"),
            *("--cache-dir", str(media.cache_dir), *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(4)]
        base = lines[0].split(" ", 1)[1]
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"GET /player_api.php?username=alpha&password=alpha-secret HTTP/1.1\r\n"
                b"Host: x\r\nConnection: close\r\n\r\n"
            )
            while sock.recv(65536):
                pass
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    return lines, err


def test_mock_provider_serve_lists_accounts_and_logs_only_with_v(
    mock_media: MediaLibrary,
) -> None:
    lines, quiet = _serve_mock(mock_media)
    assert lines[0].startswith("READY http://127.0.0.1:")
    assert lines[1] == "3 account(s):"
    assert "username alpha  password alpha-secret  (Active, 2 connection(s))" in lines[2]
    assert "username beta  password beta-secret" in lines[3]
    assert "player_api" not in quiet
    _lines, loud = _serve_mock(mock_media, "-v")
    assert "player_api.php" in loud
    assert "alpha-secret" not in loud


# -- 9. one name per stream: account/provider stream id --------------------------------------


@pytest.fixture
def twins(runtime: Runtime, mock_provider_thread: MockProviderThread) -> Runtime:
    """Two accounts on the same panel line: every provider stream id is on both."""
    for name in ("one", "two"):
        asyncio.run(
            runtime.accounts.add(
                name,
                server_url=mock_provider_thread.base_url,
                username="alpha",
                password="alpha-secret",
            )
        )
        assert asyncio.run(runtime.sync_jobs.run(name)) is not None
    runtime.epg.add("guide", from_account="one")
    asyncio.run(runtime.catalog.refresh_guide("guide"))
    return runtime


def test_stream_refs_resolve_and_ambiguity_is_explained(twins: Runtime) -> None:
    channels = twins.channels
    refs = [m.ref for m in channels.get("bbcone.uk").mappings]
    assert sorted(refs) == ["one/101", "one/102", "one/106", "two/101", "two/102", "two/106"]
    with pytest.raises(
        ConflictError, match=r"stream 101 is on several accounts: .*one/101, two/101"
    ):
        channels.find_stream("101")
    assert channels.find_stream("two/101")[1] == "two/101"
    with pytest.raises(NotFoundError, match="no provider stream three/101"):
        channels.find_stream("three/101")
    with pytest.raises(ConfigError, match="not a stream reference"):
        channels.find_stream("one/abc")
    view = channels.set_primary("bbcone.uk", "two/106")
    assert view.mappings[0].ref == "two/106"
    assert view.mappings[0].as_dict()["ref"] == "two/106"
    channels.map_remove("bbcone.uk", "one/101")
    # A bare id is looked up among the channel's streams first: only two/101 is left.
    assert channels.find_stream("101", channel="bbcone.uk")[1] == "two/101"
    channels.map_remove("bbcone.uk", "101")
    assert "two/101" not in [m.ref for m in channels.get("bbcone.uk").mappings]


def test_api_accepts_stream_refs(twins: Runtime, admin: Any) -> None:
    base = "/api/v1/channels/bbcone.uk"
    primary = admin.post(f"{base}/primary/two%2F102")
    assert primary.status_code == 200, primary.text
    assert primary.json()["mappings"][0]["ref"] == "two/102"
    removed = admin.delete(f"{base}/mappings/one%2F101")
    assert "one/101" not in [m["ref"] for m in removed.json()["mappings"]]
    order = [m["ref"] for m in removed.json()["mappings"]][::-1]
    reordered = admin.put(f"{base}/order", json={"order": order})
    assert [m["ref"] for m in reordered.json()["mappings"]] == order
    added = admin.post(f"{base}/mappings", json={"stream": "one/101", "position": 0})
    assert added.json()["mappings"][0]["ref"] == "one/101"
    row = added.json()["mappings"][1]  # digits in a path: a row id of a listing, as before
    by_row = admin.post(f"{base}/primary/{row['xtream_channel_id']}")
    assert by_row.json()["mappings"][0]["ref"] == row["ref"]
    conflict = admin.post(f"{base}/mappings", json={"stream": "101"})
    assert conflict.status_code == 409
    assert "one/101, two/101" in conflict.json()["error"]
    neither = admin.post(f"{base}/mappings", json={"position": 0})
    assert neither.status_code == 422
    suggestions = admin.get(f"{base}/suggestions").json()
    assert all("/" in s["ref"] for s in suggestions)


def test_channel_show_and_map_commands_use_refs(
    twins: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(twins.settings.data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    shown = invoke("channel", "show", "bbcone.uk")
    assert shown.exit_code == 0, shown.output
    assert "one/101" in shown.output and "two/106" in shown.output  # noqa: PT018
    assert "stream id" not in shown.output
    ambiguous = invoke("map", "primary", "bbcone.uk", "101")
    assert ambiguous.exit_code == 1
    assert ambiguous.output.strip() == (
        "error: stream 101 is on several accounts: use one of one/101, two/101"
    )
    assert invoke("map", "primary", "bbcone.uk", "two/101").exit_code == 0
    assert twins.channels.get("bbcone.uk").mappings[0].ref == "two/101"
    helped = invoke("map", "primary", "--help")
    assert "alpha/106" in helped.output
