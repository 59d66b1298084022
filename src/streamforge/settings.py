"""StreamForge settings: one object, read from ``STREAMFORGE_*`` environment
variables (and an optional ``.env`` file), validated once at start-up and then
passed explicitly to whatever needs it. There is no module-level settings
singleton: ``load_settings()`` builds a fresh object each call.

Every streaming constant the failover machinery needs lives here, with the
defaults of the seed story (60 s recovery period, 2 s failover budget).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamforge.errors import ConfigError
from streamforge.filemodes import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, tighten_directory

_ENV_PREFIX = "STREAMFORGE_"


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/streamforge`` on Linux)."""
    return Path(platformdirs.user_data_dir("streamforge", appauthor=False))


class Settings(BaseSettings):
    """All of StreamForge's configuration. Field docs are the user documentation."""

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        frozen=True,
        # inf/nan are never a sane timeout or count (and JSON would store them as null).
        allow_inf_nan=False,
    )

    # -- storage -------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory for the SQLite database, the credential key and the device id.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file `streamforge.db` in the data dir. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    keyring: bool = Field(
        default=True,
        description="Store provider passwords in the OS keyring when a usable backend exists "
        "(otherwise AES-256-GCM with a key file in the data dir).",
    )

    # -- cluster ---------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:6379/0); when set, this node runs in cluster mode "
        "with the other nodes on the same Redis and PostgreSQL database.",
    )
    node_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        description="Name of this node in a cluster (default: the host name).",
    )
    lease_ttl: float = Field(
        default=10.0,
        ge=1,
        le=10,
        description="Seconds until a cluster node that stops renewing loses its provider "
        "connection leases, owned channels and leadership.",
    )
    cluster_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret (at least 16 characters) that the nodes of a cluster use "
        "to authenticate their internal stream relay requests (default: derived from "
        "STREAMFORGE_SECRET_KEY).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Sealing key for stored provider passwords, shared by every node of a "
        "cluster: 32 bytes, base64 (`streamforge secret rotate` makes one). Replaces the data "
        "dir key file and the OS keyring when set.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="A file holding STREAMFORGE_SECRET_KEY (base64), e.g. a container secret.",
    )

    # -- HTTP server ---------------------------------------------------------
    host: str = Field(default="0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(default=5004, ge=1, le=65535, description="HTTP port.")
    base_url: str | None = Field(
        default=None,
        description="Public base URL override (e.g. http://192.168.1.20:5004) used in lineup, "
        "M3U and discovery answers; default: the address the request came in on.",
    )
    admin_password: str | None = Field(
        default=None,
        description="Admin password for the API and UI; overrides the stored hash when set.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDRs of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (default: none, the headers "
        "are ignored).",
    )

    # -- discovery -----------------------------------------------------------
    discovery_enabled: bool = Field(default=True, description="Answer HDHomeRun UDP discovery.")
    discovery_port: int = Field(default=65001, ge=1, le=65535, description="UDP discovery port.")
    ssdp_enabled: bool = Field(default=True, description="Answer SSDP M-SEARCH and send NOTIFY.")
    tuner_count: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Override for the advertised tuner count (default: sum of max_connections "
        "of active accounts).",
    )
    device_name: str = Field(default="StreamForge", description="FriendlyName shown in Plex.")
    channels_per_device: int = Field(
        default=480,
        ge=1,
        le=10000,
        description="Most channels on one virtual HDHomeRun device (Plex takes about 480 per "
        "DVR device); a larger lineup is split over several devices at /devices/N/.",
    )
    device_ports: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: device N (N >= 2) is also served on its own HTTP port, port + N - 1, "
        "so its BaseURL stays short (libhdhomerun keeps 29 bytes of it); off: /devices/N/ only.",
    )

    # -- periodic jobs -------------------------------------------------------
    account_sync_interval: float = Field(
        default=12 * 3600, ge=60, description="Seconds between automatic channel syncs."
    )
    epg_refresh_interval: float = Field(
        default=12 * 3600, ge=60, description="Seconds between automatic guide refreshes."
    )
    epg_days_back: float = Field(default=1, ge=0, le=14, description="Guide window: days back.")
    epg_days_ahead: float = Field(default=7, ge=0, le=31, description="Guide window: days ahead.")
    match_threshold: float = Field(
        default=0.86, ge=0, le=1, description="Minimum fuzzy-match confidence to map a stream."
    )

    # -- streaming -----------------------------------------------------------
    connect_timeout: float = Field(
        default=1.0, gt=0, le=30, description="Seconds to connect to a provider stream."
    )
    header_timeout: float = Field(
        default=1.5, gt=0, le=30, description="Seconds to receive a provider's response headers."
    )
    stall_timeout: float = Field(
        default=3.0,
        ge=0.1,
        le=60,
        description="Seconds without bytes before a stream without readable timestamps is "
        "stalled (the backstop; streams with a media clock are judged by the live lag limit).",
    )
    live_lag_limit: float = Field(
        default=1.5,
        ge=0.5,
        le=2.0,
        description="Seconds a stream's media time may fall behind the wall clock before it "
        "is behind live and failed over (players start with 2-4 s of buffer).",
    )
    black_seconds: float = Field(
        default=8.0,
        ge=1,
        le=600,
        description="Seconds of black picture before a stream is failed over.",
    )
    frozen_seconds: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="Seconds of frozen picture (or a static slate) before a stream is failed over.",
    )
    silence_seconds: float = Field(
        default=15.0,
        ge=1,
        le=600,
        description="Seconds of silence (below -60 dBFS) before a stream is failed over.",
    )
    probe_healthy_seconds: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description="Seconds of healthy media (moving picture, sound, not behind live) an "
        "upgrade probe must deliver before switching back; 0 switches on bytes alone.",
    )
    failover_budget: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds a failover should take: the target switch events are judged against.",
    )
    outage_limit: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a failover may leave the viewer waiting before the stream ends "
        "(untried streams are tried until then).",
    )
    hedge_delay: float = Field(
        default=0.4,
        ge=0.05,
        le=10,
        description="Seconds a stream being tried may go without video before the next one "
        "is opened alongside it.",
    )
    recovery_period: float = Field(
        default=60.0,
        ge=1,
        le=86400,
        description="Seconds on a backup before probing the better stream.",
    )
    probe_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds an upgrade probe has to deliver valid TS."
    )
    breaker_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that open a stream's breaker."
    )
    breaker_cooldown: float = Field(
        default=30.0, gt=0, description="First breaker cool-down in seconds (doubles on repeat)."
    )
    breaker_max_cooldown: float = Field(
        default=900.0, gt=0, description="Longest breaker cool-down in seconds."
    )
    session_linger: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Seconds a channel's upstream stays open after its last client leaves "
        "(for quick channel zapping); 0 closes at once.",
    )
    outage_hold: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="Seconds a channel whose streams all failed keeps its viewers on a "
        "'temporarily unavailable' slate while retrying; 0 ends the stream at once.",
    )
    tune_handover: bool = Field(
        default=True,
        description="When a channel's connections are all held by sessions whose only "
        "client is the address now tuning another channel, hand them over (channel change).",
    )
    client_buffer_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=188 * 64,
        description="Per-session fan-out buffer; a client further behind is skipped ahead.",
    )
    user_agent: str = Field(
        default="VLC/3.0.20 LibVLC/3.0.20",
        description="Default User-Agent for provider requests (accounts may override).",
    )

    # -- event log -----------------------------------------------------------
    event_retention_days: float = Field(
        default=30, gt=0, description="Events older than this are deleted."
    )
    event_max_rows: int = Field(
        default=100_000, ge=100, description="At most this many events are kept."
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        example = "must be an http(s) URL such as http://192.168.1.20:5004"
        if any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError(f"{example} (no spaces or control characters)")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{example} ({exc})") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(example)
        if port == 0:
            raise ValueError(f"{example} (port 0)")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for item in _split_list(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return ",".join(_split_list(value))

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` parsed."""
        return tuple(
            ipaddress.ip_network(i, strict=False) for i in _split_list(self.trusted_proxies)
        )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        database_url = info.data.get("database_url")
        if not (isinstance(database_url, str) and database_url.startswith("postgresql")):
            raise ValueError(
                "cluster mode needs a PostgreSQL STREAMFORGE_DATABASE_URL shared by all nodes "
                "(the embedded SQLite database belongs to one node)"
            )
        return value

    @field_validator("cluster_secret")
    @classmethod
    def _check_cluster_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value().strip() == "":
            return None
        decode_secret_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_secret_key_source(self) -> Settings:
        if self.secret_key is not None and self.secret_key_file is not None:
            raise ValueError("set STREAMFORGE_SECRET_KEY or STREAMFORGE_SECRET_KEY_FILE, not both")
        return self

    def shared_secret_key(self) -> bytes | None:
        """The cluster's sealing key (``secret_key`` or the file's content), or None."""
        if self.secret_key is not None:
            return decode_secret_key(self.secret_key.get_secret_value())
        if self.secret_key_file is None:
            return None
        try:
            text = self.secret_key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"STREAMFORGE_SECRET_KEY_FILE: {self.secret_key_file} cannot be read ({exc})"
            ) from None
        try:
            return decode_secret_key(text)
        except ValueError as exc:
            raise ConfigError(f"STREAMFORGE_SECRET_KEY_FILE: {exc}") from None

    @model_validator(mode="after")
    def _check_cooldowns(self) -> Settings:
        if self.breaker_max_cooldown < self.breaker_cooldown:
            raise ValueError("breaker_max_cooldown must be >= breaker_cooldown")
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL in force: the setting, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'streamforge.db'}"

    def ensure_data_dir(self) -> Path:
        """Create the data dir (``0700``) if needed, take group/other access away
        from it and the files in it (see :mod:`streamforge.filemodes`), and prove
        it is writable."""
        try:
            self.data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            tighten_directory(self.data_dir)
            probe = self.data_dir / ".write-test"
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE))
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"STREAMFORGE_DATA_DIR: {self.data_dir} is not writable ({exc.strerror})"
            ) from exc
        return self.data_dir


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def decode_secret_key(text: str) -> bytes:
    """32 bytes from their base64 text; ValueError otherwise (never showing the value)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 32 bytes in base64 (44 characters)") from None
    if len(key) != 32:
        raise ValueError(f"must be 32 bytes in base64 (44 characters), got {len(key)} bytes")
    return key


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = first.get("loc") or ("settings",)
    name = f"{_ENV_PREFIX}{str(loc[0]).upper()}"
    return f"{name}: {first.get('msg', 'invalid value')}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment plus explicit overrides.

    A malformed value raises :class:`ConfigError` with one line naming the
    setting, e.g. ``STREAMFORGE_PORT: Input should be less than or equal to 65535``.
    """
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def documented_settings() -> dict[str, str]:
    """Environment variable name → description, for docs and the UI."""
    return {
        f"{_ENV_PREFIX}{name.upper()}": (field.description or "")
        for name, field in Settings.model_fields.items()
    }


def environ_has_setting(name: str) -> bool:
    """Whether ``STREAMFORGE_<NAME>`` is set in the environment."""
    return f"{_ENV_PREFIX}{name.upper()}" in os.environ
