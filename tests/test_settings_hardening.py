"""A settings change is validated before it is stored, and a stored value never
stops ``streamforge serve`` from starting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from streamforge.live_settings import OVERRIDES_KEY, saved_overrides
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.state import set_state
from tests.netutil import free_port


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"recovery_period": 1e999}', "recovery_period"),
        (b'{"recovery_period": -1e999}', "recovery_period"),
        (b'{"stall_timeout": 1e-9}', "stall_timeout"),
        (b'{"base_url": "http://a b:5004"}', "base_url"),
    ],
)
def test_ui_and_api_refuse_before_storing(
    admin: TestClient, runtime: Runtime, body: bytes, named: str
) -> None:
    for method, path in (("POST", "/ui/settings"), ("PATCH", "/api/v1/settings")):
        answer = admin.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, (path, answer.text)
        assert named in answer.json()["error"]
    assert saved_overrides(runtime.db) == {}
    assert runtime.settings.recovery_period == 60.0


def _serve(data_dir: Path, port: int, **env_extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        STREAMFORGE_DATA_DIR=str(data_dir),
        STREAMFORGE_KEYRING="false",
        STREAMFORGE_DISCOVERY_ENABLED="false",
        STREAMFORGE_SSDP_ENABLED="false",
        STREAMFORGE_ADMIN_PASSWORD="serve-admin-pw",
        **env_extra,
    )
    cmd = [sys.executable, "-m", "streamforge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _settings_in_force(port: int, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[0]}")
        try:
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/settings",
                auth=("admin", "serve-admin-pw"),
                timeout=2,
            )
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        assert answer.status_code == 200, answer.text
        values: dict[str, object] = answer.json()["values"]
        return values
    raise AssertionError("server did not start")


def test_invalid_stored_overrides_never_stop_start_up(tmp_path: Path) -> None:
    runtime = Runtime.build(load_settings(data_dir=tmp_path, keyring=False))
    set_state(
        runtime.db,
        OVERRIDES_KEY,
        # What 1e999 used to become, a value below the minimum, a setting that
        # is no longer editable, and a valid one the environment overrides.
        {"recovery_period": None, "stall_timeout": 1e-9, "port": 1, "tuner_count": 9},
    )
    runtime.close()
    port = free_port()
    proc = _serve(tmp_path, port, STREAMFORGE_TUNER_COUNT="3")
    try:
        values = _settings_in_force(port, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert values["recovery_period"] == 60.0
    assert values["stall_timeout"] == 3.0
    assert values["tuner_count"] == 3
    assert "Traceback" not in out
    warnings = [line for line in out.splitlines() if "ignoring the saved setting" in line]
    assert len(warnings) == 4, out
    assert any("recovery_period=None" in line for line in warnings)
    assert any("stall_timeout=1e-09" in line for line in warnings)
    assert any("'port'" in line for line in warnings)
    assert any("STREAMFORGE_TUNER_COUNT in the environment wins" in line for line in warnings)
