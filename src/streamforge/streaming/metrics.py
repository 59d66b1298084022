"""Prometheus metrics of the stream proxy (and the event loop's lag, which
every stream feels), in a registry owned by the runtime (no process-global
collectors, so several runtimes can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_GAP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: Seconds; fine at the low end, where the aims (20 ms p99, 100 ms max) are.
_TUNE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("streamforge_sessions", "Live channel sessions.", registry=r)
        self.clients = Gauge("streamforge_clients", "Connected stream clients.", registry=r)
        self.delivered_bytes = Counter(
            "streamforge_delivered_bytes", "Bytes sent to clients (all clients).", registry=r
        )
        self.upstream_bytes = Counter(
            "streamforge_upstream_bytes", "Bytes read from providers.", registry=r
        )
        self.failovers = Counter(
            "streamforge_failovers",
            "Failovers, by the reason of the failure.",
            ["reason"],
            registry=r,
        )
        self.upgrades = Counter(
            "streamforge_upgrades", "Switches back to a better stream.", registry=r
        )
        self.failover_gap = Histogram(
            "streamforge_failover_gap_seconds",
            "From detecting a failure to the backup's first valid data.",
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.output_gap = Histogram(
            "streamforge_output_gap_seconds",
            "From a failure to the next bytes published to clients (after splicing).",
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.viewer_gap = Histogram(
            "streamforge_viewer_gap_seconds",
            "From the last byte clients got before a switch to the first byte after it.",
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.health_failures = Counter(
            "streamforge_health_failures",
            "Upstream attempts failed by the media judgement (behind live, content), by reason.",
            ["reason"],
            registry=r,
        )
        self.samples_dropped = Counter(
            "streamforge_health_samples_dropped",
            "Content samples not decoded because the decoder workers were behind.",
            registry=r,
        )
        self.loop_lag = Histogram(
            "streamforge_event_loop_lag_seconds",
            "How much later than asked the event loop woke (see loop_monitor.py).",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.tunes_refused = Counter(
            "streamforge_tunes_refused",
            "Tunes of a known channel that could not be served, by reason "
            "(all_connections_in_use, every_stream_failed, no_video, no_stream).",
            ["reason"],
            registry=r,
        )
        self.tune_seconds = Histogram(
            "streamforge_tune_seconds",
            "From a tune request to its first bytes (served tunes only).",
            buckets=_TUNE_BUCKETS,
            registry=r,
        )
        self.tunes_rejected = Counter(
            "streamforge_tunes_rejected",
            "Tune requests answered 404/503, by code.",
            ["code"],
            registry=r,
        )
