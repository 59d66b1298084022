"""The addresses a user types into Plex, Jellyfin/Emby and IPTV players.

The LAN address is detected (never by sending a packet) unless the public base
URL setting overrides it; a concrete bind address is used as is.

With several virtual devices (:mod:`streamforge.outputs.devices`) each one
is added to Plex on its own: :func:`device_setup_urls` lists them all.
"""

from __future__ import annotations

from typing import Any

from streamforge.db.engine import Database
from streamforge.outputs.devices import device_summaries, settle
from streamforge.outputs.lan import advertised_base_url
from streamforge.settings import Settings


def public_base_url(settings: Settings) -> str:
    """The base URL handed to clients: the setting, else the detected LAN address."""
    return (settings.base_url or advertised_base_url(settings.host, settings.port)).rstrip("/")


def setup_urls(settings: Settings) -> dict[str, str]:
    """Every setup URL, from :func:`public_base_url`."""
    base = public_base_url(settings)
    return {
        "base": base,
        "plex": base,
        "hdhomerun": base,
        "discover": f"{base}/discover.json",
        "lineup": f"{base}/lineup.json",
        "m3u": f"{base}/playlist.m3u",
        "xmltv": f"{base}/epg.xml",
        "xmltv_gz": f"{base}/epg.xml.gz",
    }


def device_setup_urls(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """Every device with its name, DeviceID, channel count and URLs (writer
    thread: the split is persisted first)."""
    return device_summaries(settle(db, settings), settings, public_base_url(settings))
