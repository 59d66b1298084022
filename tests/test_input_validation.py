"""Hostile admin input answers 422 with a message naming what is wrong — never a
500 — and the server keeps answering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from streamforge.db.engine import Database
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from streamforge.web.app import create_app
from tests.conftest import ADMIN_PASSWORD

BIG = 2**63


def _account(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "alpha",
        "server_url": "http://127.0.0.1:9",
        "username": "u",
        "password": "p",
        "test": False,
    }
    body.update(changes)
    return body


CASES: list[tuple[str, str, str, dict[str, Any] | list[Any] | None, str]] = [
    ("priority 2**63", "POST", "/api/v1/accounts", _account(priority=BIG), "priority"),
    ("priority -2**63", "POST", "/api/v1/accounts", _account(priority=-BIG), "priority"),
    ("patch priority", "PATCH", "/api/v1/accounts/alpha", {"priority": BIG}, "priority"),
    (
        "server_url [::1",
        "POST",
        "/api/v1/accounts",
        _account(server_url="http://[::1"),
        "server URL",
    ),
    (
        "server_url surrogate",
        "POST",
        "/api/v1/accounts",
        _account(server_url="http://provider\ud800.example"),
        "server URL",
    ),
    (
        "server_url port 99999",
        "POST",
        "/api/v1/accounts",
        _account(server_url="http://provider.example:99999"),
        "Port out of range",
    ),
    (
        "server_url space",
        "PATCH",
        "/api/v1/accounts/alpha",
        {"server_url": "http://pro vider.example"},
        "spaces",
    ),
    ("name with /", "POST", "/api/v1/accounts", _account(name="a/b"), "'/'"),
    ("name with NUL", "POST", "/api/v1/accounts", _account(name="a\x00b"), "control characters"),
    ("rename with /", "PATCH", "/api/v1/accounts/alpha", {"name": "x/y"}, "'/'"),
    (
        "username with NUL",
        "POST",
        "/api/v1/accounts",
        _account(username="u\x00"),
        "control characters",
    ),
    ("stream id 2**63", "POST", "/api/v1/channels/1/mappings", {"xtream_channel_id": BIG}, "id"),
    ("order ids 2**63", "PUT", "/api/v1/channels/1/order", {"order": [1, BIG]}, "order"),
    ("path id 2**63", "DELETE", f"/api/v1/channels/1/mappings/{BIG}", None, "xtream_channel_id"),
    ("primary id 2**63", "POST", f"/api/v1/channels/1/primary/{BIG}", None, "xtream_channel_id"),
    ("events channel 2**63", "GET", f"/api/v1/events?channel_id={BIG}", None, "channel_id"),
    ("stall_timeout 1e-9", "PATCH", "/api/v1/settings", {"stall_timeout": 1e-9}, "stall_timeout"),
    (
        "base_url space",
        "PATCH",
        "/api/v1/settings",
        {"base_url": "http://192.168.1.2 :5004"},
        "base_url",
    ),
    ("GuideNumber ²", "PATCH", "/api/v1/channels/1", {"guide_number": "²"}, "GuideNumber"),
]


@pytest.fixture
def admin_with_account(admin: TestClient) -> TestClient:
    created = admin.post("/api/v1/accounts", json=_account())
    assert created.status_code == 201, created.text
    return admin


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_input_is_a_422(
    admin_with_account: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | list[Any] | None,
    message: str,
) -> None:
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    answer = admin_with_account.request(
        method,
        path,
        content=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert message in error, error
    assert "\n" not in error
    assert admin_with_account.get("/healthz").status_code == 200
    accounts = admin_with_account.get("/api/v1/accounts").json()
    assert [a["name"] for a in accounts] == ["alpha"]
    assert accounts[0]["priority"] == 0


def test_events_since_without_a_zone_is_utc(admin: TestClient, runtime: Runtime) -> None:
    runtime.events.record("info", "system", "hello")
    assert runtime.events.flush()
    naive = admin.get("/api/v1/events", params={"since": "2020-01-01T00:00:00"})
    aware = admin.get("/api/v1/events", params={"since": "2020-01-01T00:00:00Z"})
    assert naive.status_code == 200, naive.text
    assert naive.json() == aware.json()
    future = admin.get("/api/v1/events", params={"since": "2999-01-01T00:00:00"})
    assert future.status_code == 200
    assert future.json() == []


@pytest.mark.postgres
def test_nul_in_an_account_name_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    db = Database(postgres_url)
    try:
        with db.engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
    finally:
        db.dispose()
    runtime = Runtime.build(
        load_settings(
            data_dir=tmp_path, keyring=False, database_url=postgres_url, discovery_enabled=False
        )
    )
    runtime.auth.set_password(ADMIN_PASSWORD)
    try:
        with TestClient(create_app(runtime)) as client:
            client.auth = ("admin", ADMIN_PASSWORD)
            for method, path, body in (
                ("POST", "/api/v1/accounts", _account(name="a\x00b")),
                ("POST", "/api/v1/accounts", _account(username="u\x00")),
                ("GET", "/api/v1/accounts/a%00b", None),
                ("PATCH", "/api/v1/accounts/a%00b", {"priority": 1}),
            ):
                answer = client.request(method, path, json=body)
                assert answer.status_code == 422, (path, answer.text)
                assert "control characters" in answer.json()["error"]
            assert client.get("/api/v1/accounts").json() == []
    finally:
        runtime.close()
