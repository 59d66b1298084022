"""The HTTP application: Plex-facing endpoints, admin API and web UI."""
