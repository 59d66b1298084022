"""The web UI: server-rendered pages, login/logout, live updates and settings.

Theory of operation
-------------------
Every page is a Jinja2 template rendered on the server from what the
runtime's services answer (no client-side framework, no build step, no CDN).
The UI holds no SQL and reads nothing from the database on the event loop:
page data comes from :class:`~streamforge.admin_views.AdminViews`
(``runtime.views``), which reads on the database's worker threads. Reading
needs a UI session cookie (see :mod:`streamforge.web.ui.sessions`); a page
requested without one redirects to ``/ui/login``.

Changes are made by the small vanilla script (``static/app.js``) calling the
JSON API under ``/api/v1`` with ``fetch()``: the browser sends the session
cookie, the script adds the page's CSRF token as ``X-CSRF-Token`` and
``deps.require_admin`` checks both. The few UI-only actions (settings, the
demo fault panel) are JSON endpoints here behind the same guard; login and
logout are plain forms with a CSRF field.

Modules: :mod:`~.common` (templates, the page guard, rendering),
:mod:`~.login`, :mod:`~.dashboard`, :mod:`~.pages` (accounts, guides,
channels, events, setup), :mod:`~.devices` (the tuner devices),
:mod:`~.guide` (the TV guide page and the favicon),
:mod:`~.live` (the Live page, its timeline picture
and the server-sent event stream), :mod:`~.settings`, :mod:`~.demo_panel`
and :mod:`~.sessions` (the cookie, CSRF tokens and login rate limiting).
"""

from __future__ import annotations

from fastapi import APIRouter

from streamforge.web.ui import (
    dashboard,
    demo_panel,
    devices,
    guide,
    live,
    login,
    pages,
    settings,
)
from streamforge.web.ui.common import STATIC_DIR

router = APIRouter(include_in_schema=False)
router.include_router(login.router)
router.include_router(dashboard.router)
router.include_router(pages.router)
router.include_router(devices.router)
router.include_router(guide.router)
router.include_router(live.router)
router.include_router(settings.router)
router.include_router(demo_panel.router)

__all__ = ["STATIC_DIR", "router"]
