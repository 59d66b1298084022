from __future__ import annotations

from pathlib import Path

import pytest

from streamforge.errors import ConfigError
from streamforge.settings import Settings, documented_settings, load_settings


def test_defaults_follow_the_seed(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.recovery_period == 60.0
    assert s.failover_budget == 2.0
    assert s.port == 5004
    assert s.host == "0.0.0.0"
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'streamforge.db'}"


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMFORGE_PORT", "6077")
    monkeypatch.setenv("STREAMFORGE_STALL_TIMEOUT", "1.5")
    monkeypatch.setenv("STREAMFORGE_BASE_URL", "http://192.168.1.20:6077/")
    s = load_settings()
    assert (s.data_dir, s.port, s.stall_timeout) == (tmp_path, 6077, 1.5)
    assert s.base_url == "http://192.168.1.20:6077"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("STREAMFORGE_PORT", "70000", "STREAMFORGE_PORT"),
        ("STREAMFORGE_PORT", "http", "STREAMFORGE_PORT"),
        ("STREAMFORGE_BASE_URL", "not a url", "STREAMFORGE_BASE_URL"),
        ("STREAMFORGE_DATABASE_URL", "mysql://x", "STREAMFORGE_DATABASE_URL"),
        ("STREAMFORGE_STALL_TIMEOUT", "-1", "STREAMFORGE_STALL_TIMEOUT"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"^STREAMFORGE_DATA_DIR: .* is not writable"):
        load_settings(data_dir=blocker / "data").ensure_data_dir()


def test_every_setting_is_documented() -> None:
    docs = documented_settings()
    assert set(docs) == {f"STREAMFORGE_{name.upper()}" for name in Settings.model_fields}
    undocumented = [name for name, text in docs.items() if len(text) < 10]
    assert undocumented == []
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in docs if name not in readme]
    assert missing == [], f"settings missing from README: {missing}"


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]
