"""StreamForge: Xtream Codes IPTV accounts and XMLTV guides, presented to Plex,
Jellyfin and Emby as an emulated HDHomeRun tuner, with seamless automatic
stream failover.

Package map (one concept per module; ARCHITECTURE.md draws the data flow):

- ``settings``, ``errors``, ``tasks``: configuration, the exception tree, named tasks.
- ``db``: SQLAlchemy models, engine and Alembic migrations.
- ``credentials``: provider password storage (keyring or AES-256-GCM).
- ``events``: the non-blocking event log.
- ``xtream``: provider accounts, the Xtream API client, channel sync, quality tags.
- ``mockprovider``: a fault-injecting Xtream panel serving real H.264/AAC MPEG-TS.
- ``epg``: XMLTV guide sources and safe streaming import.
- ``matching``: mapping provider streams onto guide channels.
- ``outputs``: HDHomeRun emulation, discovery, M3U and XMLTV outputs.
- ``streaming``: channel sessions, fan-out, upstream reading, the failover policy.
- ``ts``: MPEG-TS packets, PSI tables and the splicer.
- ``web``: the HTTP application, admin API and UI.
- ``cli``: the ``streamforge`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
