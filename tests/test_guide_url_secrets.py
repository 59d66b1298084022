"""Guide URLs with credentials are stored sealed and shown redacted; the
settings never show the password inside a database or Redis URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from streamforge.cli.main import app as cli_app
from streamforge.epg.sources import redact_guide_url, url_has_credentials
from streamforge.live_settings import shown_settings
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime
from streamforge.settings import load_settings
from tests.test_web_ui import logged_in

SECRET = "alpha-secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "http://h:8080/xmltv.php?username=alpha&password=alpha-secret",
            "http://h:8080/xmltv.php?username=***&password=***",
        ),
        ("https://bob:hunter22@guides.example/g.xml.gz", "https://***@guides.example/g.xml.gz"),
        ("http://[::1]:81/live/alpha/alpha-secret/epg.xml", "http://[::1]:81/live/***/***/epg.xml"),
        ("http://h/epg.xml?token=abcdef&days=7", "http://h/epg.xml?token=***&days=7"),
    ],
)
def test_redaction(url: str, shown: str) -> None:
    assert url_has_credentials(url)
    assert redact_guide_url(url) == shown


def test_a_plain_url_is_kept_as_it_is() -> None:
    url = "https://epg.example/guide.xml.gz?days=7"
    assert not url_has_credentials(url)
    assert redact_guide_url(url) == url


def test_guide_url_is_sealed_shown_redacted_and_still_downloads(
    runtime: Runtime,
    admin: TestClient,
    mock_provider_thread: MockProviderThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"{mock_provider_thread.base_url}/xmltv.php?username=alpha&password={SECRET}"
    added = admin.post("/api/v1/epg", json={"name": "g", "url": url, "refresh": True})
    assert added.status_code == 201, added.text
    assert added.json()["import"]["channels"] > 0
    assert SECRET not in added.text
    listed = admin.get("/api/v1/epg")
    assert SECRET not in listed.text
    assert listed.json()[0]["location"].endswith("/xmltv.php?username=***&password=***")
    with runtime.db.engine.connect() as c:
        location, sealed = c.execute(
            text("SELECT location, location_sealed FROM xmltv_sources")
        ).one()
    assert SECRET not in location
    assert sealed is not None
    assert SECRET.encode() not in bytes(sealed)
    # The UI's guides page and the command line show the redacted form too.
    logged_in(admin)
    page = admin.get("/ui/guides")
    assert page.status_code == 200
    assert SECRET not in page.text
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    for args in (["epg", "list"], ["epg", "list", "--json"]):
        result = CliRunner().invoke(cli_app, args)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    # A refresh unseals the full URL for the download.
    again = admin.post("/api/v1/epg/g/refresh")
    assert again.status_code == 200, again.text


def test_plain_urls_of_an_older_version_are_sealed_at_start(
    runtime: Runtime, mock_provider_thread: MockProviderThread
) -> None:
    url = f"{mock_provider_thread.base_url}/xmltv.php?username=alpha&password={SECRET}"
    with runtime.db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO xmltv_sources (name, kind, location, is_active, last_report, "
                "created_at) VALUES ('old', 'url', :url, 1, '{}', CURRENT_TIMESTAMP)"
            ),
            {"url": url},
        )
    restarted = Runtime.build(runtime.settings)
    try:
        view = restarted.epg.get("old")
        assert view.location is not None
        assert SECRET not in view.location
        assert "password=***" in view.location
        summary = asyncio.run(restarted.epg.refresh("old"))
        assert summary["channels"] > 0
    finally:
        restarted.close()


def test_settings_never_show_a_database_password(runtime: Runtime, admin: TestClient) -> None:
    assert shown_settings(
        load_settings(database_url="postgresql+psycopg://sf:top%40secret@db.lan:5432/sf")
    )["database_url"] == ("postgresql+psycopg://sf:***@db.lan:5432/sf")
    runtime.settings = runtime.settings.model_copy(
        update={
            "database_url": "postgresql+psycopg://sf:topsecret@db.lan/sf",
            "redis_url": "redis://:redissecret@cache.lan:6379/0",
            "cluster_secret": SecretStr("clustersecret-0123456789"),
        }
    )
    answer = admin.get("/api/v1/settings")
    assert answer.status_code == 200
    for secret in ("topsecret", "redissecret", "clustersecret"):
        assert secret not in answer.text
    values = answer.json()["values"]
    assert values["database_url"] == "postgresql+psycopg://sf:***@db.lan/sf"
    assert values["redis_url"] == "redis://:***@cache.lan:6379/0"
    assert values["cluster_secret"] == "***"
    logged_in(admin)
    page = admin.get("/ui/settings")
    assert page.status_code == 200
    for secret in ("topsecret", "redissecret", "clustersecret"):
        assert secret not in page.text
    assert "sf:***@db.lan" in page.text


def test_a_guide_file_path_is_unchanged(runtime: Runtime, tmp_path: Path) -> None:
    guide = tmp_path / "g.xml"
    guide.write_text('<?xml version="1.0"?><tv></tv>', encoding="utf-8")
    view = runtime.epg.add("file", file=str(guide))
    assert view.location == str(guide.resolve())
