"""Matching provider streams onto guide channels (many streams per channel)."""
