"""Xtream Codes provider accounts: API client, channel sync and quality tags."""
