"""The HTTP side of admin authentication: the ``Authorization: Basic`` header.

The API accepts HTTP Basic (any user name, conventionally ``admin``) with the
admin password that :class:`~streamforge.admin_auth.AdminAuth` checks; the UI
uses a session cookie (see :mod:`streamforge.web.ui.sessions`).
"""

from __future__ import annotations

import base64
import binascii

from streamforge.admin_auth import AdminAuth


def basic_password(header: str | None) -> str | None:
    """The password of an ``Authorization: Basic …`` header value, if it carries one."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


def verify_basic_header(auth: AdminAuth, header: str | None) -> bool:
    """Check an ``Authorization: Basic …`` header value against the admin password."""
    password = basic_password(header)
    return password is not None and auth.verify(password)
