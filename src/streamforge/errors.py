"""The StreamForge exception tree.

Lower-layer errors (aiohttp, SQLAlchemy, lxml, cryptography) are translated
into these once, at the boundary where they occur. Every message is one line a
user can act on, and none ever contains a provider password.

::

    StreamForgeError
    ├── ConfigError               a setting is malformed or unusable
    │   ├── SettingsRejected      live_settings.py: a run-time settings change refused
    │   ├── NodeIdInUseError      cluster/node.py: another live node runs with this node id
    │   └── InvalidInput          an admin's value is refused before anything is stored (422)
    │       └── InvalidGuideNumber guide_number.py: not digits with an optional .subchannel
    ├── DatabaseError
    │   └── SchemaTooNewError     the database was migrated by a newer StreamForge
    ├── CredentialError           a stored password cannot be decrypted / key unusable
    │   └── KeyMismatchError      credentials.py: this node's secret key is not the cluster's
    ├── NotFoundError             a named account, source, channel … does not exist
    ├── ConflictError             a name or number is already taken
    ├── ProviderError             an Xtream panel answered in a way we cannot use
    │   ├── ProviderUnreachable   refused, DNS, reset, TLS
    │   ├── ProviderTimeout       no answer (or no headers) within the timeout
    │   ├── ProviderHTTPError     non-2xx status (carries ``status``)
    │   ├── ProviderAuthError     HTTP 200 with ``user_info.auth == 0``
    │   ├── AccountExpiredError   expired/disabled/banned account (object instead of list)
    │   ├── ProviderBadResponse   HTML, empty body, malformed JSON, wrong shape
    │   ├── HttpFailure           xtream/http.py: one provider exchange failed (a FailureKind)
    │   └── AccountCheckFailed    xtream/accounts.py: a new account refused, so not stored
    ├── GuideError                an XMLTV file is unsafe, malformed or unreadable
    │   └── XmltvTimeError        epg/xmltv_time.py: not an XMLTV date/time (also a ValueError)
    ├── StreamingError            a channel stream cannot be served as asked
    │   ├── UpstreamFailure       streaming/reasons.py: why an upstream stopped (a FailureReason)
    │   ├── PlaylistError         streaming/hls.py: not a usable HLS playlist (also a ValueError)
    │   ├── FailoverProtocolError streaming/protocol.py: the driver fed the policy an illegal event
    │   ├── SlotError             streaming/slots.py: a slot lease released twice or never issued
    │   ├── TuneError             streaming/manager.py: a tune answered 404/503 (HDHomeRun code)
    │   ├── NoSession             streaming/manager.py: manual control of a channel not playing
    │   ├── SwitchRejected        streaming/session.py: the policy cannot make this manual switch
    │   └── StreamNotFound        streaming/session.py: a stream reference names no stream here
    ├── MediaError                MPEG-TS content cannot be parsed or spliced
    │   ├── PsiError              ts/psi.py: a malformed PAT/PMT section (also a ValueError)
    │   └── SpliceError           ts/splicer.py: an upstream cannot be spliced into the session
    ├── WorkerCrashed             cpu_pool.py: a CPU pool's worker process died running a call
    └── MalformedFrameError       outputs/discovery.py: a truncated or corrupt discovery datagram

The branches are defined here; a leaf that belongs to one module's vocabulary
is defined in that module (named above) and derives from its branch, so that
``except StreamingError`` or ``except MediaError`` catches a whole family.
Parse errors of a value format are also :class:`ValueError`.
"""

from __future__ import annotations


class StreamForgeError(Exception):
    """Base of every error StreamForge raises on purpose."""


class ConfigError(StreamForgeError):
    """A setting is malformed or unusable (the message names the setting)."""


class InvalidInput(ConfigError):
    """A value an admin gave (API, UI, command line) is refused; nothing was stored."""


class DatabaseError(StreamForgeError):
    """The database cannot be used."""


class SchemaTooNewError(DatabaseError):
    """The database schema is newer than this version of StreamForge understands."""


class CredentialError(StreamForgeError):
    """A stored provider password cannot be decrypted, or the key store is unusable."""


class NotFoundError(StreamForgeError):
    """A named object does not exist."""


class ConflictError(StreamForgeError):
    """A name, number or mapping already exists."""


class ProviderError(StreamForgeError):
    """An Xtream Codes panel answered in a way StreamForge cannot use."""


class ProviderUnreachable(ProviderError):
    """Connection refused, DNS failure, reset or TLS failure."""


class ProviderTimeout(ProviderError):
    """The panel did not answer (or send headers) within the timeout."""


class ProviderHTTPError(ProviderError):
    """The panel answered with a non-2xx HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """Wrong username or password (HTTP 200 with ``user_info.auth == 0``)."""


class AccountExpiredError(ProviderError):
    """The account is expired, disabled or banned."""


class ProviderBadResponse(ProviderError):
    """HTML, an empty body, malformed JSON or JSON of the wrong shape."""


class GuideError(StreamForgeError):
    """An XMLTV guide is unsafe, malformed or unreadable."""


class StreamingError(StreamForgeError):
    """A channel stream cannot be served as asked (upstreams, tuning, the failover policy)."""


class MediaError(StreamForgeError):
    """MPEG-TS content cannot be parsed or spliced."""
