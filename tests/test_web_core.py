from __future__ import annotations

from fastapi.testclient import TestClient

from streamforge.admin_auth import AdminAuth
from streamforge.runtime import Runtime


def test_healthz_is_open(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_api_needs_admin(client: TestClient) -> None:
    answer = client.get("/api/v1/status")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert answer.json() == {"error": "admin authentication required"}
    assert client.get("/api/v1/status", auth=("admin", "wrong")).status_code == 401


def test_api_with_admin(admin: TestClient) -> None:
    answer = admin.get("/api/v1/status")
    assert answer.status_code == 200
    assert answer.json()["database"] == "sqlite"


def test_events_endpoint_filters(admin: TestClient, runtime: Runtime) -> None:
    runtime.events.record("warning", "stream", "failover", {"reason": "stall"}, channel_id=9)
    runtime.events.record("info", "account", "synced")
    assert runtime.events.flush()
    answer = admin.get("/api/v1/events", params={"category": "stream"})
    assert [e["message"] for e in answer.json()] == ["failover"]
    assert admin.get("/api/v1/events", params={"level": "loud"}).status_code == 422


def test_openapi_docs_served(client: TestClient) -> None:
    assert client.get("/api/docs").status_code == 200
    assert "/api/v1/status" in client.get("/api/openapi.json").json()["paths"]


def test_errors_are_json_without_trace(client: TestClient) -> None:
    answer = client.get("/no/such/page")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found"}


def test_password_hash_is_not_fast_hash(runtime: Runtime) -> None:
    from streamforge.state import get_state

    stored = get_state(runtime.db, "admin_password_hash")
    assert stored.startswith("$argon2id$")
    assert "test-admin-password" not in stored


def test_generated_password_on_first_start(runtime: Runtime) -> None:
    from streamforge.state import set_state

    set_state(runtime.db, "admin_password_hash", None)
    auth = AdminAuth(runtime.db)
    password = auth.ensure_password()
    assert password
    assert len(password) >= 12
    assert auth.verify(password)
    assert auth.ensure_password() is None  # only once


def test_env_override(runtime: Runtime) -> None:
    auth = AdminAuth(runtime.db, override="from-env-123")
    assert auth.verify("from-env-123")
    assert not auth.verify("test-admin-password")


def test_settings_change_through_the_api(admin: TestClient, runtime: Runtime) -> None:
    """The API changes settings through the same runtime method as the UI."""
    from streamforge.live_settings import OVERRIDES_KEY
    from streamforge.state import get_state

    answer = admin.patch("/api/v1/settings", json={"recovery_period": 42, "ssdp_enabled": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == ["recovery_period"]
    assert answer.json()["after_restart"] == ["ssdp_enabled"]
    assert runtime.streams.policy_config.recovery_period == 42
    assert get_state(runtime.db, OVERRIDES_KEY) == {"recovery_period": 42.0, "ssdp_enabled": False}
    assert admin.get("/api/v1/settings").json()["values"]["recovery_period"] == 42
    refused = admin.patch("/api/v1/settings", json={"port": 1})
    assert refused.status_code == 422
    assert refused.json() == {"error": "not editable here: port"}
    invalid = admin.patch("/api/v1/settings", json={"stall_timeout": -1})
    assert invalid.status_code == 422
    assert "stall_timeout" in invalid.json()["error"]
    assert runtime.settings.stall_timeout == 3.0
    assert runtime.events.flush()
    changed = [e.message for e in runtime.events.query(category="system")]
    assert "settings changed through the API" in changed
