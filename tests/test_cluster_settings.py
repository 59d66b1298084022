"""Cluster settings: Redis only with PostgreSQL, a TTL of at most 10 s, a real secret."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamforge.errors import ConfigError
from streamforge.settings import load_settings

PG = "postgresql+psycopg://sf@127.0.0.1:5432/streamforge"


def test_single_node_defaults_need_no_redis(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.redis_url is None
    assert s.lease_ttl == 10.0
    assert s.node_name == socket.gethostname()
    assert s.cluster_secret is None


def test_redis_with_the_sqlite_default_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMFORGE_REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("STREAMFORGE_REDIS_URL:")
    assert "STREAMFORGE_DATABASE_URL" in message
    assert "\n" not in message


def test_redis_with_an_explicit_sqlite_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^STREAMFORGE_REDIS_URL: .*STREAMFORGE_DATABASE_URL"):
        load_settings(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
            redis_url="redis://127.0.0.1:6379/0",
        )


def test_redis_with_postgresql_is_cluster_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFORGE_DATABASE_URL", PG)
    monkeypatch.setenv("STREAMFORGE_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("STREAMFORGE_NODE_NAME", "tuner-b")
    monkeypatch.setenv("STREAMFORGE_LEASE_TTL", "4")
    monkeypatch.setenv("STREAMFORGE_CLUSTER_SECRET", "s3cret-s3cret-s3cret")
    s = load_settings()
    assert (s.redis_url, s.node_name, s.lease_ttl) == ("redis://127.0.0.1:6379/0", "tuner-b", 4)
    assert s.cluster_secret is not None
    assert s.cluster_secret.get_secret_value() == "s3cret-s3cret-s3cret"
    assert "s3cret" not in repr(s)
    assert "s3cret" not in str(s.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("STREAMFORGE_LEASE_TTL", "11"),
        ("STREAMFORGE_LEASE_TTL", "0.5"),
        ("STREAMFORGE_REDIS_URL", "http://127.0.0.1:6379"),
        ("STREAMFORGE_CLUSTER_SECRET", "short"),
    ],
)
def test_malformed_cluster_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATABASE_URL", PG)
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(env + ":")
    assert "\n" not in str(info.value)
