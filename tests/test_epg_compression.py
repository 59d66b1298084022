"""Compression detection by content, streaming decompression and its errors."""

from __future__ import annotations

import gzip
import io
import lzma
from pathlib import Path

import pytest

from streamforge.epg.compression import Compression, detect_compression, open_guide
from streamforge.errors import GuideError

PAYLOAD = b'<?xml version="1.0"?>\n<tv>' + b"<channel id='x'/>" * 2000 + b"</tv>\n"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1f\x8b\x08\x00", Compression.GZIP),
        (b"\xfd7zXZ\x00\x00", Compression.XZ),
        (b"<?xml", Compression.PLAIN),
        (b"", Compression.PLAIN),
        (b"\x1f", Compression.PLAIN),
    ],
)
def test_detect_compression_from_magic(head: bytes, expected: Compression) -> None:
    assert detect_compression(head) is expected


@pytest.mark.parametrize(
    ("name", "encode", "expected"),
    [
        # Every file name lies about the content.
        ("guide.xml", gzip.compress, Compression.GZIP),
        ("guide.xz", gzip.compress, Compression.GZIP),
        ("guide.gz", lzma.compress, Compression.XZ),
        ("guide.xml", lzma.compress, Compression.XZ),
        ("guide.gz", lambda data: data, Compression.PLAIN),
        ("guide.xz", lambda data: data, Compression.PLAIN),
    ],
)
def test_open_guide_ignores_misleading_names(
    tmp_path: Path, name: str, encode: object, expected: Compression
) -> None:
    path = tmp_path / name
    assert callable(encode)
    path.write_bytes(encode(PAYLOAD))
    with open_guide(path) as stream:
        assert stream.compression is expected
        assert stream.read() == PAYLOAD


def test_open_guide_accepts_file_objects_and_reports_progress(tmp_path: Path) -> None:
    compressed = gzip.compress(PAYLOAD)
    path = tmp_path / "g.bin"
    path.write_bytes(compressed)
    seen: list[tuple[int, int | None]] = []
    with (
        path.open("rb") as handle,
        open_guide(handle, progress=lambda done, total: seen.append((done, total))) as stream,
    ):
        chunks = []
        while chunk := stream.read(1000):
            chunks.append(chunk)
    assert b"".join(chunks) == PAYLOAD
    assert seen
    assert seen[-1] == (len(compressed), len(compressed))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_progress_total_is_none_for_unsized_streams() -> None:
    seen: list[tuple[int, int | None]] = []
    with open_guide(io.BytesIO(PAYLOAD), progress=lambda d, t: seen.append((d, t))) as stream:
        stream.read()
    assert seen[-1] == (len(PAYLOAD), None)


def test_truncated_gzip_is_a_guide_error() -> None:
    data = gzip.compress(PAYLOAD)[:-20]
    with open_guide(io.BytesIO(data)) as stream, pytest.raises(GuideError, match="truncated"):
        stream.read()


def test_corrupt_xz_is_a_guide_error() -> None:
    data = bytearray(lzma.compress(PAYLOAD))
    data[40:60] = b"\x00" * 20
    with open_guide(io.BytesIO(bytes(data))) as stream, pytest.raises(GuideError):
        stream.read()


def test_decompression_bomb_is_bounded() -> None:
    bomb = gzip.compress(b"\x00" * 5_000_000)
    with open_guide(io.BytesIO(bomb), max_uncompressed=1_000_000) as stream:
        drain = iter(lambda: stream.read(65536), b"")
        with pytest.raises(GuideError, match="decompresses to more than"):
            list(drain)


def test_missing_file_is_a_guide_error(tmp_path: Path) -> None:
    with pytest.raises(GuideError, match="cannot open guide"):
        open_guide(tmp_path / "absent.xml")


def test_close_closes_the_underlying_file(tmp_path: Path) -> None:
    path = tmp_path / "g.xml"
    path.write_bytes(PAYLOAD)
    handle = path.open("rb")
    stream = open_guide(handle)
    stream.close()
    assert handle.closed


def test_closed_file_object_is_a_guide_error() -> None:
    handle = io.BytesIO(PAYLOAD)
    handle.close()
    with pytest.raises(GuideError, match="cannot read guide"):
        open_guide(handle)
