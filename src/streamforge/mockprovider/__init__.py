"""A fault-injecting mock Xtream Codes panel serving real H.264/AAC MPEG-TS.

Modules: :mod:`.profiles`, :mod:`.encode`, :mod:`.clip` and :mod:`.media` (PyAV test
media, the endless-loop renderer and the media cache),
:mod:`.catalog` (accounts, streams, demo and synthetic catalogues), :mod:`.guide`
(deterministic programmes, XMLTV), :mod:`.faults` (stream faults and API quirks),
:mod:`.connections` (counters, log, max_connections), :mod:`.state`, :mod:`.api`,
:mod:`.live`, :mod:`.control`, :mod:`.panel` (the aiohttp app), :mod:`.server`,
:mod:`.threaded` and :mod:`.remote` (runners and remote control), :mod:`.config`
(config files) and :mod:`.cli` (``streamforge mock-provider``).
"""

from streamforge.mockprovider.catalog import Account, AccountStatus, Catalog, Category, Stream
from streamforge.mockprovider.config import ProviderConfig
from streamforge.mockprovider.connections import (
    ConnectionEvent,
    ConnectionInfo,
    LimitMode,
    ProviderStats,
)
from streamforge.mockprovider.faults import ApiQuirk, Fault, FaultKind, QuirkKind
from streamforge.mockprovider.media import MediaLibrary, MediaProfile, default_profiles
from streamforge.mockprovider.remote import ControlClient, MockProviderProcess
from streamforge.mockprovider.server import MockProvider
from streamforge.mockprovider.threaded import MockProviderThread

__all__ = [
    "Account",
    "AccountStatus",
    "ApiQuirk",
    "Catalog",
    "Category",
    "ConnectionEvent",
    "ConnectionInfo",
    "ControlClient",
    "Fault",
    "FaultKind",
    "LimitMode",
    "MediaLibrary",
    "MediaProfile",
    "MockProvider",
    "MockProviderProcess",
    "MockProviderThread",
    "ProviderConfig",
    "ProviderStats",
    "QuirkKind",
    "Stream",
    "default_profiles",
]
