"""A channel's own media judgement: stored (migration 0002), through the API and
the CLI, read by the session manager; and what :class:`ChannelJudgement` ignores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from streamforge.cli.main import app
from streamforge.errors import ConfigError
from streamforge.runtime import Runtime
from streamforge.streaming.health.judge import ChannelJudgement
from streamforge.streaming.health.verdicts import ContentReason, HealthConfig
from tests import test_epg_sources_and_matching as matching_tests

# The guide channels and streams of the matching tests (mock provider + a guide).
populated = matching_tests.populated


def test_defaults_need_no_configuration(populated: Path, runtime: Runtime) -> None:
    assert runtime.channels.health("bbcone.uk") == ChannelJudgement()
    view = runtime.channels.get("bbcone.uk")
    assert runtime.channels.judgement_for_channel(view.id) == ChannelJudgement()


def test_api_sets_a_radio_channel_and_thresholds(
    populated: Path, admin: TestClient, runtime: Runtime
) -> None:
    changed = admin.patch(
        "/api/v1/channels/bbcone.uk/health",
        json={"audio_only": True, "frozen": False, "silence_seconds": 30},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() | {} == {
        "audio_only": True,
        "black": True,
        "frozen": False,
        "silence": True,
        "black_seconds": None,
        "frozen_seconds": None,
        "silence_seconds": 30.0,
    }
    assert admin.get("/api/v1/channels/bbcone.uk/health").json()["silence_seconds"] == 30.0
    back = admin.patch("/api/v1/channels/bbcone.uk/health", json={"silence_seconds": None})
    assert back.json()["silence_seconds"] is None
    assert back.json()["audio_only"] is True  # only what was given changed
    bad = admin.patch("/api/v1/channels/bbcone.uk/health", json={"black_seconds": 0.1})
    assert bad.status_code == 400
    view = runtime.channels.get("bbcone.uk")
    judgement = runtime.channels.judgement_for_channel(view.id)
    assert judgement.audio_only
    assert not judgement.frozen
    assert runtime.events.flush()
    logged = [e.message for e in runtime.events.query(category="channel")]
    assert any("media checks radio (audio only)" in m for m in logged)


def test_cli_switches_checks_off_and_shows_them(
    populated: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    result = CliRunner().invoke(
        app,
        ["channel", "health", "bbcone.uk", "--no-frozen", "--silence-seconds", "30", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["frozen"] is False
    assert data["silence_seconds"] == 30.0
    shown = CliRunner().invoke(app, ["channel", "health", "bbcone.uk"])
    assert shown.exit_code == 0, shown.output
    assert "frozen picture" in shown.output
    assert "30 s" in shown.output
    reset = CliRunner().invoke(app, ["channel", "health", "bbcone.uk", "--defaults", "--json"])
    assert json.loads(reset.output) == ChannelJudgement().as_dict()


def test_out_of_range_threshold_is_refused(populated: Path, runtime: Runtime) -> None:
    with pytest.raises(ConfigError, match="frozen_seconds"):
        runtime.channels.set_health("bbcone.uk", frozen_seconds=9999.0)


def test_what_a_judgement_ignores() -> None:
    radio = ChannelJudgement(audio_only=True)
    for reason in (
        ContentReason.NO_VIDEO,
        ContentReason.BLACK_PICTURE,
        ContentReason.FROZEN_PICTURE,
        ContentReason.UNDECODABLE,
    ):
        assert radio.ignores(reason)
    assert not radio.ignores(ContentReason.SILENT_AUDIO)
    assert not radio.ignores(ContentReason.NO_AUDIO)
    quiet = ChannelJudgement(silence=False, frozen=False)
    assert quiet.ignores(ContentReason.SILENT_AUDIO)
    assert quiet.ignores(ContentReason.FROZEN_PICTURE)
    assert not quiet.ignores(ContentReason.BLACK_PICTURE)
    assert not ChannelJudgement().ignores(ContentReason.BLACK_PICTURE)
    config = ChannelJudgement(black_seconds=3.0).config(HealthConfig())
    assert (config.black_seconds, config.frozen_seconds) == (3.0, HealthConfig().frozen_seconds)
