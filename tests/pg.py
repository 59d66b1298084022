"""A throwaway PostgreSQL server for the tests.

``STREAMFORGE_TEST_POSTGRES_URL`` points the tests at an existing server.
Otherwise a private cluster is created with Debian's ``initdb`` in a temp dir,
listening on a Unix socket and 127.0.0.1 on a free port, and removed after the
session. PostgreSQL refuses to run as root, so as root the cluster belongs to
the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netutil import free_port


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return shutil.which(name)


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None:
        return cmd
    return ["runuser", "-u", user, "--", *cmd]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh PostgreSQL database."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("PostgreSQL server binaries not found (install Debian's postgresql)")
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)
    base = Path(tempfile.mkdtemp(prefix="sf-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(sock, entry.pw_uid, entry.pw_gid)
    port = free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_user([initdb, "-D", str(data), "-U", "sf", "-A", "trust"], user), **run)
    opts = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={sock} -c fsync=off"
    )
    start = [pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]
    subprocess.run(_as_user(start, user), **run)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"postgresql+psycopg://sf@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], user),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
