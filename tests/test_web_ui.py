"""The web UI on the server side: login, cookie security, CSRF, rate limiting,
pages for a populated runtime, live updates, settings and the demo panel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamforge.demo import DemoControls, configure
from streamforge.live_settings import OVERRIDES_KEY, apply_saved_overrides
from streamforge.mockprovider import MockProvider
from streamforge.runtime import Runtime
from streamforge.state import get_state
from streamforge.web.app import create_app
from streamforge.web.ui.live import live_frames, timeline_picture
from streamforge.web.ui.sessions import LoginLimiter, UiSessions
from tests.conftest import ADMIN_PASSWORD

PAGES = (
    "/ui/",
    "/ui/accounts",
    "/ui/guides",
    "/ui/channels",
    "/ui/live",
    "/ui/events",
    "/ui/setup",
    "/ui/settings",
)


def _csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf" value="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client: TestClient, password: str = ADMIN_PASSWORD) -> httpx.Response:
    form = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"password": password, "csrf": _csrf_of(form.text), "next": "/ui/"},
        follow_redirects=False,
    )


def logged_in(client: TestClient) -> str:
    """Log in and return the session's CSRF token."""
    assert login(client).status_code == 303
    return _csrf_of(client.get("/ui/").text)


# -- login and the cookie ------------------------------------------------------------------
def test_pages_redirect_to_login_without_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=")


def test_login_sets_a_strict_httponly_cookie_and_opens_pages(client: TestClient) -> None:
    answer = login(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "sf_session=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<main" in page.text


def test_wrong_password_is_refused(client: TestClient) -> None:
    answer = login(client, "not-the-password")
    assert answer.status_code == 401
    assert "Wrong password" in answer.text
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_login_without_its_form_token_is_forbidden(client: TestClient) -> None:
    client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"password": ADMIN_PASSWORD, "csrf": "forged"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "login form expired" in answer.text
    retry = client.post(
        "/ui/login",
        data={"password": ADMIN_PASSWORD, "csrf": _csrf_of(answer.text)},
        follow_redirects=False,
    )
    assert retry.status_code == 303


def test_login_attempts_are_rate_limited_per_client(client: TestClient) -> None:
    codes = [login(client, "wrong-password").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    limited = login(client)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_limiter_window_slides() -> None:
    now = [0.0]
    limiter = LoginLimiter(limit=2, window=60.0, clock=lambda: now[0])
    assert limiter.attempt("a") == 0.0
    assert limiter.attempt("a") == 0.0
    assert limiter.attempt("a") == pytest.approx(60.0)
    assert limiter.attempt("b") == 0.0
    now[0] = 60.5
    assert limiter.attempt("a") == 0.0


def test_sessions_expire_when_idle() -> None:
    now = [0.0]
    sessions = UiSessions(idle_timeout=10.0, clock=lambda: now[0])
    session = sessions.create()
    now[0] = 9.0
    assert sessions.valid(session.token)
    now[0] = 18.0
    assert sessions.valid(session.token)
    now[0] = 28.5
    assert not sessions.valid(session.token)
    assert len(sessions) == 0


def test_logout_needs_the_token_and_ends_the_session(client: TestClient) -> None:
    csrf = logged_in(client)
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/ui/", follow_redirects=False).status_code == 200
    answer = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/ui/", follow_redirects=False).status_code == 303


# -- CSRF on the JSON API ------------------------------------------------------------------
def test_cookie_api_calls_need_the_csrf_header_to_change_state(client: TestClient) -> None:
    csrf = logged_in(client)
    assert client.get("/api/v1/status").status_code == 200
    assert client.post("/api/v1/match").status_code == 403
    assert client.post("/api/v1/match", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/api/v1/match", headers={"X-CSRF-Token": csrf}).status_code == 200
    client.cookies.set("sf_session", "stale")
    stale = client.get("/api/v1/status")
    assert stale.status_code == 401
    assert "www-authenticate" not in stale.headers


def test_basic_auth_api_calls_need_no_csrf(admin: TestClient) -> None:
    assert admin.post("/api/v1/match").status_code == 200


def test_one_sessions_token_does_not_fit_another(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as first, TestClient(create_app(runtime)) as second:
        first_csrf = logged_in(first)
        logged_in(second)
        forged = second.post("/api/v1/match", headers={"X-CSRF-Token": first_csrf})
        assert forged.status_code == 403


# -- settings --------------------------------------------------------------------------------
def test_settings_apply_live_and_persist(client: TestClient, runtime: Runtime) -> None:
    csrf = logged_in(client)
    headers = {"X-CSRF-Token": csrf}
    answer = client.post(
        "/ui/settings",
        json={"recovery_period": 15, "stall_timeout": 1.5, "discovery_enabled": False},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["applied"] == ["recovery_period", "stall_timeout"]
    assert body["after_restart"] == ["discovery_enabled"]
    assert runtime.settings.recovery_period == 15
    assert runtime.streams.policy_config.recovery_period == 15
    assert runtime.streams.upstream_config.stall_timeout == 1.5
    saved = get_state(runtime.db, OVERRIDES_KEY)
    assert saved == {"recovery_period": 15.0, "stall_timeout": 1.5, "discovery_enabled": False}
    restarted = apply_saved_overrides(runtime.settings.model_copy(), runtime.db)
    assert restarted.discovery_enabled is False
    fresh = Runtime.build(runtime.settings.model_copy(update={"recovery_period": 60.0}))
    try:
        fresh.restore_saved_settings()
        assert fresh.settings.recovery_period == 15
        assert fresh.streams.policy_config.recovery_period == 15
    finally:
        fresh.close()
    assert "Applies after restart" in client.get("/ui/settings").text


def test_settings_are_validated_and_limited(client: TestClient, runtime: Runtime) -> None:
    headers = {"X-CSRF-Token": logged_in(client)}
    bad = client.post("/ui/settings", json={"stall_timeout": -1}, headers=headers)
    assert bad.status_code == 422
    assert "stall_timeout" in bad.json()["error"]
    url = client.post("/ui/settings", json={"base_url": "ftp://x"}, headers=headers)
    assert url.status_code == 422
    other = client.post("/ui/settings", json={"port": 1}, headers=headers)
    assert other.status_code == 422
    broken = client.post("/ui/settings", content=b"{not json", headers=headers)
    assert broken.status_code == 422
    assert runtime.settings.stall_timeout == 3.0
    assert client.post("/ui/settings", json={"stall_timeout": 2}).status_code == 403
    ok = client.post(
        "/ui/settings", json={"base_url": "http://10.0.0.5:5004", "tuner_count": 3}, headers=headers
    )
    assert ok.status_code == 200
    assert "http://10.0.0.5:5004/lineup.json" in client.get("/ui/setup").text
    assert client.get("/discover.json").json()["TunerCount"] == 3


def test_demo_panel_is_absent_outside_demo_mode(client: TestClient) -> None:
    headers = {"X-CSRF-Token": logged_in(client)}
    assert "demo-panel" not in client.get("/ui/live").text
    assert client.post("/ui/demo/recover", headers=headers).status_code == 404


# -- timeline picture ----------------------------------------------------------------------
def test_timeline_picture_follows_switches() -> None:
    status: dict[str, Any] = {
        "uptime_s": 100.0,
        "stream": "A",
        "streams": [{"stream": "A"}, {"stream": "B"}],
        "timeline": [
            {"t": 40.0, "kind": "failover", "reason": "eof", "to": "B"},
            {"t": 50.0, "kind": "upgrade_failed", "reason": "stall", "to": None},
            {"t": 80.0, "kind": "upgrade", "reason": "recovery", "to": "A"},
        ],
    }
    picture = timeline_picture(status)
    assert [(s["stream"], s["start"], s["end"]) for s in picture["segments"]] == [
        ("A", 0.0, 40.0),
        ("B", 40.0, 80.0),
        ("A", 80.0, 100.0),
    ]
    assert [s["width"] for s in picture["segments"]] == [40.0, 40.0, 20.0]
    assert picture["segments"][0]["colour"] != picture["segments"][1]["colour"]
    assert [m["pct"] for m in picture["marks"]] == [40.0, 50.0, 80.0]


def test_timeline_picture_uses_the_sessions_switches() -> None:
    status: dict[str, Any] = {
        "uptime_s": 50.0,
        "stream": "B",
        "streams": [{"stream": "A"}, {"stream": "B"}],
        "timeline": [
            {"t": 0.0, "kind": "open", "stream": "A"},
            {"t": 0.5, "kind": "switch", "stream": "A"},
            {"t": 20.0, "kind": "open", "stream": "B"},
            {"t": 20.0, "kind": "switch", "stream": "B"},
            {"t": 20.0, "kind": "failover", "reason": "end_of_stream", "to": "B"},
            {"t": 40.0, "kind": "end", "reason": "clients_gone"},
        ],
    }
    picture = timeline_picture(status)
    assert [(s["stream"], s["start"], s["end"]) for s in picture["segments"]] == [
        ("A", 0.5, 20.0),
        ("B", 20.0, 40.0),
    ]
    assert [m["kind"] for m in picture["marks"]] == ["failover", "end"]


def test_timeline_picture_of_a_fresh_session() -> None:
    picture = timeline_picture({"uptime_s": 0.0, "stream": "A", "streams": [], "timeline": []})
    assert picture["marks"] == []
    assert [s["stream"] for s in picture["segments"]] == ["A"]


# -- a populated runtime against the mock provider ------------------------------------------
@pytest.fixture
async def populated(
    runtime: Runtime, mock_provider: MockProvider
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await configure(runtime, mock_provider)
    app = create_app(runtime)
    app.state.demo = DemoControls(mock_provider, runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        form = await http.get("/ui/login")
        answer = await http.post(
            "/ui/login", data={"password": ADMIN_PASSWORD, "csrf": _csrf_of(form.text)}
        )
        assert answer.status_code == 303
        yield app, http


async def test_pages_render_a_populated_runtime(
    populated: tuple[FastAPI, httpx.AsyncClient], runtime: Runtime
) -> None:
    _app, http = populated
    dashboard = (await http.get("/ui/")).text
    assert "alpha" in dashboard
    assert "beta" in dashboard
    assert "alpha-guide" in dashboard
    assert re.search(r'id="count-backups">\s*[1-9]', dashboard)
    accounts = (await http.get("/ui/accounts")).text
    assert 'data-account="alpha"' in accounts
    assert "0 / 2" in accounts
    guides = (await http.get("/ui/guides")).text
    assert "alpha-guide" in guides
    assert "Import report" in guides
    channels = (await http.get("/ui/channels")).text
    assert "BBC One" in channels
    assert "UK: BBC One FHD" in channels
    only = (await http.get("/ui/channels", params={"search": "ESPN"})).text
    assert "ESPN" in only
    assert "BBC One" not in only
    bbc = runtime.channels.get("bbcone.uk")
    detail = (await http.get(f"/ui/channels/{bbc.id}")).text
    names = re.findall(r'<span class="name">([^<]+)</span>', detail)
    assert names == [m.stream_name for m in bbc.mappings]
    assert len(names) >= 2
    assert "breaker-closed" in detail
    events = (await http.get("/ui/events", params={"category": "account"})).text
    assert "account &#39;alpha&#39; added" in events or "account 'alpha' added" in events
    bad = await http.get("/ui/events", params={"since": "yesterday"})
    assert bad.status_code == 200
    assert "Filter not understood" in bad.text
    live = (await http.get("/ui/live")).text
    assert "demo-panel" in live
    assert "status 503" in live
    setup = (await http.get("/ui/setup")).text
    assert "/lineup.json" in setup
    assert 'data-action="copy"' in setup


async def test_dashboard_puts_an_expired_account_first(
    populated: tuple[FastAPI, httpx.AsyncClient], runtime: Runtime, mock_provider: MockProvider
) -> None:
    _app, http = populated
    await runtime.accounts.add(
        "old", server_url=mock_provider.base_url, username="expired", password="expired-secret"
    )
    page = (await http.get("/ui/")).text
    problems = page[page.index("Needs attention") : page.index("acc-h")]
    assert "Account old expired" in problems


async def test_demo_fault_needs_a_playing_channel(
    populated: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _app, http = populated
    csrf = _csrf_of((await http.get("/ui/live")).text)
    answer = await http.post(
        "/ui/demo/fault",
        json={"guide_number": "1", "kind": "eof"},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 404
    assert "nothing is playing" in answer.json()["error"]
    unknown = await http.post(
        "/ui/demo/fault",
        json={"guide_number": "1", "kind": "meteor"},
        headers={"X-CSRF-Token": csrf},
    )
    assert unknown.status_code == 400


class _Request:
    """The part of a Starlette request the live stream uses."""

    def __init__(self) -> None:
        self.gone = False

    async def is_disconnected(self) -> bool:
        return self.gone


async def test_live_stream_sends_sessions_and_new_events(runtime: Runtime) -> None:
    request = _Request()
    frames = live_frames(request, runtime, limit=None, interval=30.0)  # type: ignore[arg-type]
    assert (await anext(frames)).startswith(b"retry:")
    first = await anext(frames)
    assert first.startswith(b"event: sessions\ndata: []")
    runtime.events.record("warning", "stream", "failover from A to B", {"reason": "eof"})
    event = await anext(frames)
    assert event.startswith(b"event: event\n")
    assert b"failover from A to B" in event
    request.gone = True
    await frames.aclose()


async def test_live_endpoint_streams_server_sent_events(
    populated: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _app, http = populated
    answer = await http.get("/ui/live/events", params={"limit": 1})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "event: sessions" in answer.text
