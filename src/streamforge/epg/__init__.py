"""XMLTV guide sources: safe streaming import and storage."""
