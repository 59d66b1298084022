"""The rendered-guide cache: same version served from the copy, any change
that alters the output gives a new version, an interrupted render keeps nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamforge.outputs.catalog import LineupRow
from streamforge.outputs.guide_cache import GuideCache, guide_version
from streamforge.runtime import Runtime

ROW = LineupRow(1, "1", "BBC One", "bbcone.uk", None, "", "HD", 1, "bbcone.uk")


def test_version_changes_with_what_the_output_depends_on(runtime: Runtime) -> None:
    now = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    base = guide_version(runtime.db, [ROW], now)
    assert guide_version(runtime.db, [ROW], now) == base
    renamed = LineupRow(1, "1", "BBC One HD", "bbcone.uk", None, "", "HD", 1, "bbcone.uk")
    assert guide_version(runtime.db, [renamed], now) != base
    assert guide_version(runtime.db, [ROW], now + timedelta(hours=2)) != base
    assert guide_version(runtime.db, [], now) != base


def test_tee_keeps_a_complete_copy_only(tmp_path: Path) -> None:
    cache = GuideCache(tmp_path / "cache")
    assert cache.cached("epg.xml", "v1") is None
    assert b"".join(cache.tee("epg.xml", "v1", [b"<tv>", b"</tv>"])) == b"<tv></tv>"
    copy = cache.cached("epg.xml", "v1")
    assert copy is not None
    assert copy.read_bytes() == b"<tv></tv>"
    # a newer version replaces the old copy
    assert b"".join(cache.tee("epg.xml", "v2", [b"x"])) == b"x"
    assert cache.cached("epg.xml", "v1") is None
    # a render abandoned half-way (client gone) leaves nothing
    partial = cache.tee("epg.xml", "v3", iter([b"a", b"b"]))
    assert next(partial) == b"a"
    partial.close()
    assert cache.cached("epg.xml", "v3") is None
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["epg.xml-v2"]


def test_warm_renders_once_and_requests_use_the_copy(runtime: Runtime) -> None:
    from fastapi.testclient import TestClient

    from streamforge.outputs.guide_cache import warm
    from streamforge.web.app import create_app

    cache = GuideCache(runtime.settings.data_dir / "cache")
    assert warm(runtime.db, cache) is True
    assert warm(runtime.db, cache) is False
    (copy,) = (runtime.settings.data_dir / "cache").glob("epg.xml-*")
    with TestClient(create_app(runtime)) as client:
        answer = client.get("/epg.xml")
    assert answer.content == copy.read_bytes()
    assert answer.headers["etag"].strip('"') == copy.name.split("-", 1)[1]
