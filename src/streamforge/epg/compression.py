"""Open an XMLTV guide as a plain byte stream, whatever its compression.

Theory of operation
-------------------
Guide providers publish ``guide.xml``, ``guide.xml.gz`` and ``guide.xz`` -
and just as often serve gzip under a ``.xml`` name or plain XML under
``.gz``. The file name is therefore never consulted: the first bytes of the
content decide (:func:`detect_compression`):

* ``1f 8b``                 → gzip
* ``fd 37 7a 58 5a 00``     → xz
* anything else             → plain (the XML parser judges whether it is XML)

:func:`open_guide` opens a path (or wraps an already-open binary file),
peeks at the magic bytes without consuming them, and returns a
:class:`GuideStream`: a read-only binary file object that decompresses
incrementally. Nothing is ever decompressed in full, so a 500 MB guide is read
in constant memory.

Two wrappers sit around the decompressor:

* :class:`_CountingReader` counts the *raw* (compressed) bytes taken from the
  file, which is what a progress bar can compare with the file size; it calls
  the optional ``progress(bytes_read, total_bytes)`` callback after every read.
* :class:`GuideStream` translates the decompressors' own exceptions
  (``gzip.BadGzipFile``, ``EOFError`` for a truncated gzip member,
  ``lzma.LZMAError``, ``OSError``) into :class:`~streamforge.errors.GuideError`
  with a one-line message, and enforces an upper bound on the decompressed
  size so a decompression bomb (a few kB of gzip expanding to terabytes)
  fails instead of running forever.
"""

from __future__ import annotations

import enum
import gzip
import io
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from streamforge.errors import GuideError

ProgressCallback = Callable[[int, "int | None"], None]
"""``progress(bytes_read, total_bytes_or_None)`` - raw (compressed) bytes."""

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
MAGIC_LENGTH = max(len(GZIP_MAGIC), len(XZ_MAGIC))

DEFAULT_MAX_UNCOMPRESSED = 8 * 1024**3
"""Refuse guides that decompress to more than 8 GiB (real guides are < 1 GiB)."""


class Compression(enum.Enum):
    """How a guide file is compressed, as detected from its first bytes."""

    PLAIN = "plain"
    GZIP = "gzip"
    XZ = "xz"


def detect_compression(head: bytes) -> Compression:
    """Classify a guide by its leading magic bytes (never by its name)."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(XZ_MAGIC):
        return Compression.XZ
    return Compression.PLAIN


class _CountingReader(io.RawIOBase):
    """A raw reader that counts bytes taken from ``inner`` and reports progress."""

    def __init__(
        self, inner: BinaryIO, total: int | None, progress: ProgressCallback | None
    ) -> None:
        super().__init__()
        self._inner = inner
        self._total = total
        self._progress = progress
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.bytes_read += count
        if count and self._progress is not None:
            self._progress(self.bytes_read, self._total)
        return count


class GuideStream(io.RawIOBase):
    """Read-only stream of the *decompressed* guide bytes.

    Every read error is reported as :class:`GuideError`; the underlying file
    is closed by :meth:`close` (use it as a context manager).
    """

    def __init__(
        self,
        decoded: io.BufferedIOBase,
        counter: _CountingReader,
        owned: BinaryIO | None,
        compression: Compression,
        max_uncompressed: int,
    ) -> None:
        super().__init__()
        self._decoded = decoded
        self._counter = counter
        self._owned = owned
        self.compression = compression
        self._max = max_uncompressed
        self.uncompressed_bytes = 0

    @property
    def raw_bytes_read(self) -> int:
        """Compressed bytes consumed from the source so far."""
        return self._counter.bytes_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._decoded.read(len(buffer))
        except EOFError as exc:
            raise GuideError(
                f"{self.compression.value} guide is truncated (compressed stream ended early)"
            ) from exc
        except (gzip.BadGzipFile, lzma.LZMAError) as exc:
            raise GuideError(f"{self.compression.value} guide is corrupt: {exc}") from exc
        except OSError as exc:
            raise GuideError(f"cannot read guide: {exc}") from exc
        count = len(data)
        self.uncompressed_bytes += count
        if self.uncompressed_bytes > self._max:
            raise GuideError(
                f"guide decompresses to more than {self._max} bytes; refusing to read further"
            )
        buffer[:count] = data
        return count

    def close(self) -> None:
        if not self.closed:
            try:
                self._decoded.close()
            finally:
                if self._owned is not None:
                    self._owned.close()
        super().close()


def _total_size(fileobj: BinaryIO) -> int | None:
    try:
        return os.fstat(fileobj.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def open_guide(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    progress: ProgressCallback | None = None,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
) -> GuideStream:
    """Open ``source`` (a path or a binary file object) as a decompressed stream.

    The compression is detected from the content. A file object passed in is
    read from its current position and closed together with the returned
    stream. Raises :class:`GuideError` if a path cannot be opened.
    """
    owned: BinaryIO | None
    if isinstance(source, (str, os.PathLike)):
        try:
            fileobj: BinaryIO = Path(source).open("rb")  # noqa: SIM115 - closed by GuideStream
        except OSError as exc:
            raise GuideError(f"cannot open guide {os.fspath(source)!r}: {exc.strerror}") from exc
        owned = fileobj
    else:
        fileobj = source
        owned = source
    counter = _CountingReader(fileobj, _total_size(fileobj), progress)
    buffered = io.BufferedReader(counter, buffer_size=256 * 1024)
    try:
        head = buffered.peek(MAGIC_LENGTH)[:MAGIC_LENGTH]
    except (OSError, ValueError) as exc:  # ValueError: the file object is closed
        fileobj.close()
        raise GuideError(f"cannot read guide: {exc}") from exc
    compression = detect_compression(head)
    decoded: io.BufferedIOBase
    if compression is Compression.GZIP:
        decoded = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif compression is Compression.XZ:
        decoded = lzma.LZMAFile(buffered, mode="rb")  # noqa: SIM115
    else:
        decoded = buffered
    return GuideStream(decoded, counter, owned, compression, max_uncompressed)
