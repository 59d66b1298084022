"""The CPU pool runs work in other processes, is shut down with the runtime,
turns a dead worker into a one-line error and recovers; the work it is given
(guide staging, matching, stream-list parsing) gives the in-process results."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamforge.cpu_pool import WORKER_NICENESS, CpuPool, WorkerCrashed, pack_rows, unpack_rows
from streamforge.epg.store import stage_guide, stage_guide_in_process
from streamforge.epg.xmltv_parse import ImportWindow
from streamforge.errors import GuideError
from streamforge.matching import match_worker
from streamforge.runtime import Runtime
from streamforge.settings import Settings
from streamforge.xtream.models import parse_live_streams
from streamforge.xtream.streams_worker import pack_streams, parse_streams_body, quality_json

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _die() -> None:
    """Worker side: end the worker process abruptly (as the OOM killer would)."""
    os._exit(3)


def _refuse(reason: str) -> None:
    raise GuideError(reason)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _wait_until_gone(pid: int) -> bool:
    deadline = time.monotonic() + 20.0
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _staging_files() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("sf-guide-stage-*"))


async def test_runs_in_another_process_from_async_code_and_from_a_thread() -> None:
    pool = CpuPool("test-cpu", workers=1)
    assert pool.worker_pids() == []  # started lazily
    try:
        pid = await pool.run(os.getpid)
        assert pid != os.getpid()
        assert pool.worker_pids() == [pid]
        assert await asyncio.to_thread(pool.call, os.getpid) == pid
        assert pool.started == 1
    finally:
        await pool.aclose()


async def test_an_error_of_the_function_reaches_the_caller_unchanged() -> None:
    pool = CpuPool("test-cpu")
    try:
        with pytest.raises(GuideError, match=r"^not a guide$"):
            await pool.run(_refuse, "not a guide")
        assert pool.started == 1  # the worker survived
    finally:
        await pool.aclose()


async def test_a_dead_worker_is_a_one_line_error_and_the_pool_recovers() -> None:
    pool = CpuPool("test-cpu", workers=1)
    try:
        first = await pool.run(os.getpid)
        with pytest.raises(WorkerCrashed) as info:
            await pool.run(_die)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("a worker process of test-cpu died while running _die")
        assert await _wait_until_gone(first)
        second = await pool.run(os.getpid)
        assert second not in {first, os.getpid()}
        assert pool.started == 2
        with pytest.raises(WorkerCrashed, match="died while running _die"):
            await asyncio.to_thread(pool.call, _die)
        assert await pool.run(os.getpid) != second
    finally:
        await pool.aclose()


async def test_the_pool_is_shut_down_with_the_runtime(settings: Settings) -> None:
    runtime = Runtime.build(settings)
    pid = await runtime.cpu.run(os.getpid)
    assert pid != os.getpid()
    await runtime.aclose()
    assert await _wait_until_gone(pid)
    assert runtime.cpu.worker_pids() == []
    with pytest.raises(RuntimeError, match="closed"):
        await runtime.cpu.run(os.getpid)


def _guide(path: Path, channels: int) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<tv>"]
    for c in range(channels):
        lines.append(f'<channel id="c{c}.uk"><display-name>Channel {c}</display-name></channel>')
    for c in range(channels):
        for hour in range(10, 16):
            lines.append(
                f'<programme start="20260301{hour:02d}0000 +0000" '
                f'stop="20260301{hour + 1:02d}0000 +0000" channel="c{c}.uk">'
                f"<title>Show {c}-{hour}</title><desc>About {c}</desc></programme>"
            )
    lines.append("</tv>")
    path.write_text("\n".join(lines), encoding="utf-8")


async def test_a_guide_staged_in_a_worker_equals_one_staged_here(tmp_path: Path) -> None:
    guide = tmp_path / "guide.xml"
    _guide(guide, 700)  # more than one spool batch of programmes
    window = ImportWindow(1, 7)
    seen: list[tuple[int, int | None]] = []
    pool = CpuPool("test-cpu")
    try:
        staged, report = await stage_guide_in_process(
            pool, str(guide), now=NOW, window=window, progress=lambda d, t: seen.append((d, t))
        )
    finally:
        await pool.aclose()
    here, here_report = stage_guide(str(guide), now=NOW, window=window)
    with staged, here:
        assert report == here_report
        assert report.programmes == 4200
        assert staged.channels == here.channels
        assert list(staged._spool.batches()) == list(here._spool.batches())
    assert seen
    assert seen[-1][0] == guide.stat().st_size


async def test_a_broken_guide_in_a_worker_raises_the_same_error(tmp_path: Path) -> None:
    guide = tmp_path / "guide.xml"
    guide.write_bytes(b"<tv><channel id='x'><display-name>X</display-name></chan")
    pool = CpuPool("test-cpu")
    try:
        with pytest.raises(GuideError) as in_worker:
            await stage_guide_in_process(pool, str(guide), now=NOW, window=None)
    finally:
        await pool.aclose()
    with pytest.raises(GuideError) as here:
        stage_guide(str(guide), now=NOW, window=None)
    assert str(in_worker.value) == str(here.value)
    assert not _staging_files()


def test_packed_rows_round_trip_in_batches() -> None:
    rows = [(i, f"name {i}", None) for i in range(4501)]
    packed = pack_rows(rows, batch=2000)
    assert len(packed) == 3
    assert list(unpack_rows(packed)) == rows
    assert pack_rows([]) == []


def test_the_packed_match_gives_the_in_process_decisions() -> None:
    guide: list[match_worker.GuideRow] = [
        ("bbcone.uk", ["BBC One"]),
        ("itv1.uk", ["ITV 1", "ITV"]),
        ("cnn.us", ["CNN"]),
    ]
    streams: list[match_worker.StreamRow] = [
        (1, "UK: BBC One HD", None, 1, 0),
        (2, "UK: BBC ONE FHD", "bbcone.uk", 2, 1),
        (3, "ITV", None, 1, 0),
        (4, "Totally unrelated", None, 1, 0),
        (5, "CNN International", None, 1, 0),
    ]
    decisions, unmatched = match_worker.decide(guide, streams, 0.8, {5})
    packed, packed_unmatched = match_worker.decide_packed(
        guide, pack_rows(streams), 0.8, frozenset({5})
    )
    assert list(unpack_rows(packed)) == decisions
    assert packed_unmatched == unmatched == 1
    assert dict(decisions)["bbcone.uk"][0][0] in {1, 2}
    assert all(sid != 5 for _ch, results in decisions for sid, _conf in results)


def test_a_stream_list_body_parses_to_the_rows_of_the_models() -> None:
    data = [
        {"stream_id": "7", "name": "UK: Sky News FHD", "category_id": 3, "stream_type": "live"},
        {"stream_id": 8, "name": "DE: Das Erste HD", "epg_channel_id": "daserste.de"},
        {"name": "no id"},
    ]
    body = b"\xef\xbb\xbf" + json.dumps(data).encode()
    packed = parse_streams_body(body)
    assert packed is not None
    parsed = parse_live_streams(data)
    assert parsed is not None
    expected = pack_streams(parsed.items, parsed.skipped)
    assert list(packed.rows()) == list(expected.rows())
    assert (packed.count, packed.skipped) == (2, 1)
    first = next(packed.rows())
    assert first[:6] == (7, "UK: Sky News FHD", "live", None, None, "3")
    assert quality_json(first[6])["tier"] == "FHD"
    assert quality_json(first[6])["tags"] == sorted(quality_json(first[6])["tags"])
    for unusable in (b"", b"  <html>", b"[1, 2", b'{"user_info": {"auth": 0}}'):
        assert parse_streams_body(unusable) is None


def test_stream_rows_leave_the_garbage_collector_after_a_few_passes() -> None:
    # A sync holds every row of a 60,000-stream account at once: rows the
    # collector keeps tracking make each full collection (an event-loop pause)
    # longer, so a row is atoms and tuples of atoms only.
    data = [{"stream_id": i, "name": f"UK: Sky Sports {i} FHD [Multi-Audio]"} for i in range(50)]
    packed = parse_streams_body(json.dumps(data).encode())
    assert packed is not None
    rows = list(packed.rows())
    for _ in range(4):  # one pass untracks one level of nested tuples
        gc.collect()
    assert not any(gc.is_tracked(row) for row in rows)
    assert quality_json(rows[3][6])["tags"] == list(quality_json(rows[3][6])["tags"])


async def test_workers_run_at_a_lower_priority() -> None:
    pool = CpuPool("test-cpu")
    try:
        assert await pool.run(os.nice, 0) == min(os.nice(0) + WORKER_NICENESS, 19)
    finally:
        await pool.aclose()
