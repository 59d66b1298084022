"""Shared fixtures: a data dir, settings, a runtime on a real SQLite file,
an HTTP client on the real app, and a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamforge.runtime import Runtime
from streamforge.settings import Settings, load_settings
from streamforge.web.app import create_app
from tests.mockfixtures import (  # noqa: F401
    make_mock_provider,
    mock_media,
    mock_provider,
    mock_provider_thread,
)
from tests.pg import postgres_server
from tests.redisfix import redis_session_server, redis_srv  # noqa: F401

ADMIN_PASSWORD = "test-admin-password"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("STREAMFORGE_") and key != "STREAMFORGE_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings(
        data_dir=data_dir, keyring=False, discovery_enabled=False, ssdp_enabled=False
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings)
    rt.auth.set_password(ADMIN_PASSWORD)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    client.auth = ("admin", ADMIN_PASSWORD)
    return client


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("STREAMFORGE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        with postgres_server() as started:
            yield started
    except (RuntimeError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server available: {exc}")
