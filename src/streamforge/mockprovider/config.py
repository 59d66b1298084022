"""The mock provider's config file (JSON or TOML).

Shape (every key optional; TOML shown)::

    limit_mode = "kill_oldest"        # or "refuse_403" / "refuse_458"
    demo = true                       # start from Catalog.demo() …
    [synthetic]                       # … or a synthetic catalogue
    n_streams = 60000
    seed = 1
    [[accounts]]                      # … or explicit accounts/categories/streams
    username = "u"
    password = "p"
    max_connections = 2
    [[streams]]
    stream_id = 1
    name = "UK: BBC One HD"
    category_id = 1
    epg_channel_id = "bbcone.uk"
    profile = "hd"
    [[faults]]                        # faults active from the start
    stream_id = 1
    kind = "stall"
    after = 5
    [[quirks]]
    kind = "html"
    targets = ["get_live_streams"]
    [profiles.sd]                     # override or add media profiles
    width = 320
    height = 240
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streamforge.errors import ConfigError
from streamforge.mockprovider.catalog import Catalog
from streamforge.mockprovider.connections import LimitMode
from streamforge.mockprovider.faults import ApiQuirk, Fault
from streamforge.mockprovider.profiles import MediaProfile, default_profiles


@dataclass(frozen=True)
class ProviderConfig:
    catalog: Catalog
    faults: Mapping[int, Fault] = field(default_factory=dict)
    quirks: tuple[ApiQuirk, ...] = ()
    limit_mode: LimitMode = LimitMode.KILL_OLDEST
    profiles: Mapping[str, MediaProfile] = field(default_factory=default_profiles)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderConfig:
        faults: dict[int, Fault] = {}
        for entry in data.get("faults", ()):
            if "stream_id" not in entry:
                raise ConfigError("mock provider config: every fault needs a stream_id")
            faults[int(entry["stream_id"])] = Fault.from_dict(entry)
        quirks = tuple(ApiQuirk.from_dict(q) for q in data.get("quirks", ()))
        profiles = default_profiles()
        for name, values in dict(data.get("profiles", {})).items():
            base = profiles.get(name)
            merged = {**(asdict(base) if base else {}), **dict(values), "name": name}
            profiles[name] = MediaProfile.from_dict(merged)
        catalog = Catalog.from_dict(data) if _has_catalog(data) else Catalog.demo()
        missing = catalog.profiles_used() - set(profiles)
        if missing:
            raise ConfigError(f"mock provider config: unknown media profiles {sorted(missing)}")
        try:
            mode = LimitMode(data.get("limit_mode", LimitMode.KILL_OLDEST.value))
        except ValueError as exc:
            raise ConfigError(f"mock provider config: {exc}") from exc
        return cls(catalog, faults, quirks, mode, profiles)

    @classmethod
    def load(cls, path: Path) -> ProviderConfig:
        """Read a ``.json`` or ``.toml`` file."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"mock provider config {path}: {exc.strerror}") from exc
        try:
            if path.suffix.lower() == ".toml":
                data: Any = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"mock provider config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"mock provider config {path}: expected a table/object")
        return cls.from_dict(data)


def _has_catalog(data: Mapping[str, Any]) -> bool:
    return any(k in data for k in ("demo", "synthetic", "accounts", "streams"))
