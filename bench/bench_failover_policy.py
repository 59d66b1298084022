"""Cost of the failover policy on the stream path.

Run: ``.venv/bin/python bench/bench_failover_policy.py [--chunks 200000] [--rounds 20000]``

The driver feeds :meth:`FailoverPolicy.handle` one ``UpstreamData`` event per
chunk it reads from the playing stream, so that call is on the hot path of
every byte. This measures:

* ``data``: one ``UpstreamData`` on the playing stream (the hot path), in
  batches of 1,000 calls; printed per call, with the ratio to the time budget
  of one chunk at 20 Mbit/s in 64 KiB reads (one read every ~26 ms);
* ``failover``: one whole mid-stream failover (failure, close, open the next
  stream, headers, first data, switch, event) on a three-stream channel with
  one account behind a full slot and one stream behind an open breaker.

Prints median and p99 of each, in microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

from streamforge.streaming.breaker import BreakerConfig, CircuitBreakers
from streamforge.streaming.candidates import ProviderStream
from streamforge.streaming.policy import FailoverPolicy
from streamforge.streaming.protocol import (
    ClientsGone,
    Start,
    UpstreamData,
    UpstreamFailed,
    UpstreamOpened,
)
from streamforge.streaming.reasons import FailureReason
from streamforge.streaming.slots import AccountSlots

CHUNK = 65536
BATCH = 1000
CHUNK_INTERVAL_US = CHUNK * 8 / 20e6 * 1e6


def _streams() -> list[ProviderStream]:
    return [
        ProviderStream(
            i, 10 + i, 100 + i, f"S{i}", account, f"acct{account}", i, i == 0, max_connections=1
        )
        for i, account in enumerate((1, 2, 3, 4))
    ]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_data(chunks: int) -> list[float]:
    policy = FailoverPolicy(_streams(), slots=AccountSlots(), breakers=CircuitBreakers())
    now = 0.0
    policy.handle(Start(now))
    policy.handle(UpstreamOpened(1, now))
    policy.handle(UpstreamData(1, CHUNK, now))
    per_call = []
    for _ in range(chunks // BATCH):
        started = time.perf_counter()
        for _ in range(BATCH):
            now += 0.026
            policy.handle(UpstreamData(1, CHUNK, now))
        per_call.append((time.perf_counter() - started) / BATCH * 1e6)
    return per_call


def bench_failover(rounds: int) -> list[float]:
    streams = _streams()
    slots = AccountSlots()
    assert slots.try_acquire(2, 1, holder="another channel") is not None  # S1's account is full
    samples = []
    now = 0.0
    for _ in range(rounds):
        breakers = CircuitBreakers(BreakerConfig(threshold=1, cooldown=1e9, max_cooldown=1e9))
        breakers.record_failure(streams[2].xtream_channel_id, now)  # S2 behind an open breaker
        policy = FailoverPolicy(streams, slots=slots, breakers=breakers, channel="bench")
        policy.handle(Start(now))
        policy.handle(UpstreamOpened(1, now))
        policy.handle(UpstreamData(1, CHUNK, now))
        started = time.perf_counter()
        policy.handle(UpstreamFailed(1, FailureReason.STALL, "no bytes for 3 s", now + 1))
        policy.handle(UpstreamOpened(2, now + 1.1))
        commands = policy.handle(UpstreamData(2, CHUNK, now + 1.2))
        samples.append((time.perf_counter() - started) * 1e6)
        assert policy.playing is streams[3], commands
        policy.handle(ClientsGone(now + 2))
        now += 10.0
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()

    median, p99 = _percentiles(bench_data(args.chunks))
    print(f"data      per call  median {median:8.2f} us   p99 {p99:8.2f} us")
    print(
        f"          share of a 64 KiB chunk's time at 20 Mbit/s: "
        f"{median / CHUNK_INTERVAL_US:.6f} (1 : {CHUNK_INTERVAL_US / median:,.0f})"
    )
    median, p99 = _percentiles(bench_failover(args.rounds))
    print(f"failover  per round median {median:8.2f} us   p99 {p99:8.2f} us")
    print(f"          share of the 2 s failover budget: {median / 2e6:.8f}")


if __name__ == "__main__":
    main()
