"""Settings that change while StreamForge runs.

A few settings may change at run time (:data:`EDITABLE`). A change is
validated with the :class:`~streamforge.settings.Settings` model, persisted
under ``settings_overrides`` in ``app_state`` and, when it can apply live,
swapped into the runtime (new sessions use the new timing). Those that cannot
(discovery/SSDP responders are started once) apply after a restart;
:func:`apply_saved_overrides` folds the saved overrides into the settings at
start-up. ``Runtime.apply_settings`` is the one way in, for the UI and the
API alike.

A change is validated completely before anything is stored (non-finite
numbers such as ``1e999`` are refused by the model), and a stored value
never prevents start-up: at start-up each saved override is checked on its
own, and one that is not editable any more, or that the model refuses (an
older version stored it, or someone edited the database), is ignored with a
one-line warning naming it. A setting given in the environment
(``STREAMFORGE_<NAME>``) wins over the saved value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from streamforge.db.engine import Database
from streamforge.errors import ConfigError
from streamforge.settings import Settings, environ_has_setting
from streamforge.state import get_state, set_state

log = logging.getLogger(__name__)

OVERRIDES_KEY = "settings_overrides"

#: Settings that may change at run time: name → applies live (True) or after a restart (False).
EDITABLE: Mapping[str, bool] = MappingProxyType(
    {
        "recovery_period": True,
        "stall_timeout": True,
        "tuner_count": True,
        "base_url": True,
        "discovery_enabled": False,
        "ssdp_enabled": False,
    }
)
#: When each editable setting takes effect (shown on the Settings page).
WHEN_APPLIED: Mapping[str, str] = MappingProxyType(
    {
        "recovery_period": "Applies at once to sessions started from now on.",
        "stall_timeout": "Applies at once to sessions started from now on.",
        "tuner_count": "Applies at once (lineup, discovery).",
        "base_url": "Applies at once to lineup, M3U and setup URLs; "
        "UDP discovery answers after restart.",
        "discovery_enabled": "Applies after restart.",
        "ssdp_enabled": "Applies after restart.",
    }
)


class SettingsRejected(ConfigError):
    """A settings change that names a setting not editable at run time, or an invalid value."""


@dataclass(frozen=True)
class SettingsChange:
    """A validated change: the new settings, what applied live, what waits for a restart."""

    settings: Settings
    live: dict[str, Any]
    saved: dict[str, Any]
    after_restart: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": sorted(self.live),
            "after_restart": sorted(self.after_restart),
            "saved": self.saved,
        }


def _without_password(url: str) -> str:
    """``scheme://user:***@host/db``: a URL's password replaced (the rest kept)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def shown_settings(settings: Settings) -> dict[str, Any]:
    """The settings as the API and the Settings page show them: no admin password, any
    other secret (``cluster_secret``) as ``***``, and the password inside any URL setting
    (``database_url``, ``redis_url`` …) redacted."""
    values = settings.model_dump(mode="json", exclude={"admin_password"})
    for name, value in values.items():
        if name.endswith("_url") and isinstance(value, str):
            values[name] = _without_password(value)
        elif ("secret" in name or "password" in name) and value:
            values[name] = "***"
    return values


def validated_settings(current: Settings, changes: Mapping[str, Any]) -> Settings:
    """A new Settings with ``changes``, validated by the model (ValidationError if not)."""
    values = current.model_dump()
    values.update(changes)
    return Settings.model_validate(values)


def saved_overrides(db: Database) -> dict[str, Any]:
    """The overrides saved so far (blocking read)."""
    stored = get_state(db, OVERRIDES_KEY)
    return dict(stored) if isinstance(stored, dict) else {}


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


def apply_saved_overrides(settings: Settings, db: Database) -> Settings:
    """``settings`` with the saved overrides applied (call at start-up).

    Never raises for a stored value: an override that is not editable, is
    refused by the model, or is set in the environment is skipped with a
    one-line warning naming it."""
    current = settings
    for name, value in saved_overrides(db).items():
        if name not in EDITABLE:
            log.warning("ignoring the saved setting %r: it cannot be changed at run time", name)
            continue
        if environ_has_setting(name):
            log.warning(
                "ignoring the saved setting %s=%r: STREAMFORGE_%s in the environment wins",
                name,
                value,
                name.upper(),
            )
            continue
        try:
            current = validated_settings(current, {name: value})
        except ValidationError as exc:
            log.warning(
                "ignoring the saved setting %s=%r (%s); using %r",
                name,
                value,
                _first_error(exc),
                getattr(current, name),
            )
    return current


def plan_change(current: Settings, body: Mapping[str, Any]) -> tuple[Settings, dict[str, Any]]:
    """Validate ``body`` (setting → value, ``""`` for none): the full new settings and the
    changes as given; :class:`SettingsRejected` for a setting that is not editable or a
    value the model refuses."""
    unknown = sorted(set(body) - set(EDITABLE))
    if unknown:
        raise SettingsRejected(f"not editable here: {', '.join(unknown)}")
    changes = {k: (None if v == "" else v) for k, v in body.items()}
    try:
        return validated_settings(current, changes), changes
    except ValidationError as exc:
        raise SettingsRejected(_first_error(exc)) from None


def save_overrides(db: Database, new: Settings, names: set[str]) -> dict[str, Any]:
    """Persist ``names`` of ``new`` among the saved overrides (blocking write); all of them."""
    saved = saved_overrides(db)
    saved.update(new.model_dump(mode="json", include=names))
    set_state(db, OVERRIDES_KEY, saved)
    return saved
