"""The user's command-line workflow against the mock provider: accounts,
sync, guide, matching, channels, mappings, setup URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamforge.cli.main import app
from streamforge.matching.channels import MappingView
from streamforge.mockprovider import MockProviderThread
from streamforge.runtime import Runtime
from streamforge.settings import load_settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Path:
    monkeypatch.setenv("STREAMFORGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STREAMFORGE_KEYRING", "false")
    return data_dir


def _mappings(ref: str) -> list[MappingView]:
    runtime = Runtime.build(load_settings())
    try:
        return runtime.channels.get(ref).mappings
    finally:
        runtime.close()


def run(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_accounts_guide_channels_workflow(
    cli_env: Path, mock_provider_thread: MockProviderThread
) -> None:
    base = mock_provider_thread.base_url
    out = run(
        "account",
        "add",
        "alpha",
        "--server",
        base,
        "--username",
        "alpha",
        "--password-stdin",
        stdin="alpha-secret\n",
    )
    assert "added: ok: Active, 2 connection(s)" in out
    add_wrong = ["account", "add", "wrong", "--server", base, "--username", "alpha"]
    bad = CliRunner().invoke(app, [*add_wrong, "--password-stdin"], input="nope\n")
    assert bad.exit_code == 1
    assert "wrong username or password" in bad.output
    assert "not saved" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert [a["name"] for a in json.loads(run("account", "list", "--json"))] == ["alpha"]
    unchecked = run(*add_wrong, "--no-check", "--password-stdin", stdin="nope\n")
    assert "account 'wrong' added" in unchecked
    failing = CliRunner().invoke(app, ["account", "test", "wrong"])
    assert failing.exit_code == 1
    assert "nope" not in failing.output
    listing = json.loads(run("account", "list", "--json"))
    assert {a["name"]: a["status"] for a in listing} == {"alpha": "Active", "wrong": "AuthFailed"}
    assert "alpha-secret" not in run("account", "show", "alpha")
    assert "alpha: 6 streams (6 new" in run("account", "sync", "alpha")
    run("account", "remove", "wrong", "--yes")
    out = run("epg", "add", "guide", "--from-account", "alpha")
    assert "guide: 4 channels" in out
    assert "guide" in run("epg", "list")
    out = run("match")
    assert "6 of 6 streams mapped onto 4 channels" in out
    channels = json.loads(run("channel", "list", "--json"))
    bbc = next(c for c in channels if c["xmltv_id"] == "bbcone.uk")
    assert bbc["stream_count"] == 3
    shown = run("channel", "show", "bbcone.uk")
    assert "UK: BBC One 4K" in shown and "UK: BBC One FHD" in shown  # noqa: PT018
    run("channel", "number", "bbcone.uk", "42")
    assert "42" in run("channel", "show", "42")
    run("channel", "disable", "42")
    assert json.loads(run("channel", "list", "--disabled", "--json"))[0]["guide_number"] == "42"
    run("channel", "enable", "42")
    ids = [m.ref for m in _mappings("42")]
    assert sorted(ids) == ["alpha/101", "alpha/102", "alpha/106"]
    for ref in ids:  # `channel show` labels streams as the user names them
        assert ref in shown
    run("map", "reorder", "42", *ids[::-1])
    run("map", "primary", "42", ids[0])
    bare = ids[1].split("/")[1]  # the provider stream id alone: one account has it
    run("map", "remove", "42", bare)
    after = _mappings("42")
    assert [m.ref for m in after] == [ids[0], ids[2]]
    assert all(m.is_manual for m in after)
    run("map", "add", "42", ids[1], "--position", "1")
    assert [m.ref for m in _mappings("42")] == ids
    missing_stream = CliRunner().invoke(app, ["map", "primary", "42", "alpha/999"])
    assert missing_stream.exit_code == 1
    assert "no provider stream alpha/999" in missing_stream.output
    unmapped = run("events", "--category", "mapping")
    assert f"unmapped stream {ids[1]} from" in unmapped
    assert f'"order": ["{ids[0]}", "{ids[2]}"]' in unmapped
    missing = CliRunner().invoke(app, ["channel", "show", "nope.nope"])
    assert missing.exit_code == 1
    assert "no guide channel" in missing.output
    urls = json.loads(run("plex-urls", "--json"))
    assert urls["m3u"].endswith(":5004/playlist.m3u")
    assert urls["xmltv"].endswith(":5004/epg.xml")
    assert run("events", "--category", "account")
