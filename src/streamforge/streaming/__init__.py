"""Live streaming: channel sessions, fan-out, upstream reading and failover."""
