"""`streamforge serve` as a real process on a real socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.netutil import free_port


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()[0]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("server did not become healthy")


def test_serve_starts_prints_password_once_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        STREAMFORGE_DATA_DIR=str(tmp_path),
        STREAMFORGE_KEYRING="false",
        STREAMFORGE_DISCOVERY_ENABLED="false",
        STREAMFORGE_SSDP_ENABLED="false",
    )
    cmd = [sys.executable, "-m", "streamforge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    outputs = []
    for _ in range(2):
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/status").status_code == 401
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        outputs.append(out)
    first, second = outputs
    assert "Admin password (shown once" in first
    assert "Admin password" not in second
    password = first.split("only its hash is stored):", 1)[1].split()[0]
    assert password not in second
    assert (tmp_path / "streamforge.db").exists()


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_served_tuner_is_found_by_the_real_hdhomerun_config(tmp_path: Path) -> None:
    if shutil.which("hdhomerun_config") is None:
        pytest.skip("hdhomerun_config (Debian hdhomerun-config) is not installed")
    if not _udp_port_free(65001):
        pytest.skip("UDP port 65001 is in use on this machine")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        STREAMFORGE_DATA_DIR=str(tmp_path),
        STREAMFORGE_KEYRING="false",
        STREAMFORGE_DISCOVERY_ENABLED="true",
        STREAMFORGE_SSDP_ENABLED="false",
        STREAMFORGE_ADMIN_PASSWORD="x" * 12,
    )
    cmd = [sys.executable, "-m", "streamforge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        device_id = httpx.get(f"http://127.0.0.1:{port}/discover.json").json()["DeviceID"]
        found = subprocess.run(
            ["hdhomerun_config", "discover", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert f"hdhomerun device {device_id} found at 127.0.0.1" in found.stdout, found
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
