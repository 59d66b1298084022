"""Phase 1 of a guide import (parse and spool), runnable in a worker process.

:func:`stage_guide_file` is what :func:`streamforge.epg.store.stage_guide_in_process`
sends to the runtime's :class:`~streamforge.cpu_pool.CpuPool`: the worker
parses the XMLTV file, pickles the programme rows in batches into a staging
file (a :class:`Spool`, the format :mod:`streamforge.epg.store` swaps in), and
returns only the guide's channels (a few thousand small records) and the
import report. Progress goes through a 16-byte file the parent polls.

This module imports only the parser and the programme row format.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from streamforge.epg.compression import ProgressCallback
from streamforge.epg.programme_rows import programme_values
from streamforge.epg.xmltv_parse import (
    GuideChannelRecord,
    GuideSource,
    ImportReport,
    ImportWindow,
    XmltvReader,
)

_BATCH = 2000
_PROGRESS = struct.Struct("<qq")


class Spool:
    """Rows pickled to a temporary file in batches (bounded memory).

    ``file``: write to (or, with :meth:`reopen`, read) a given file instead of
    an anonymous temporary one — a guide parsed in a worker process spools to a
    named file that this process then reads.
    """

    def __init__(self, file: IO[bytes] | None = None, *, remove: str | None = None) -> None:
        # Closed by close(), which import_guide calls in a finally block.
        self._file: IO[bytes] = file or tempfile.TemporaryFile(prefix="sf-guide-")  # noqa: SIM115
        self._remove = remove
        self._batch: list[tuple[str, tuple[Any, ...]]] = []

    @classmethod
    def reopen(cls, path: str) -> Spool:
        """The spool a worker process wrote to ``path``; :meth:`close` deletes the file."""
        # Closed (and the file removed) by close(), like an anonymous spool.
        return cls(open(path, "rb"), remove=path)

    def add(self, channel_xmltv_id: str, row: tuple[Any, ...]) -> None:
        self._batch.append((channel_xmltv_id, row))
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def batches(self) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        self._flush()
        self._file.seek(0)
        while True:
            try:
                # Our own file, written just above in this process: trusted input.
                yield pickle.load(self._file)  # noqa: S301
            except EOFError:
                return

    def flush(self) -> None:
        """Write the pending batch (the file stays open)."""
        self._flush()
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._remove is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._remove)
            self._remove = None


def spool_guide(
    guide: GuideSource,
    spool: Spool,
    *,
    now: datetime,
    window: ImportWindow | None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, GuideChannelRecord], ImportReport]:
    """Parse ``guide``: its channels and report returned, its programmes into
    ``spool`` (closed on failure)."""
    reader = XmltvReader(guide, now=now, window=window, progress=progress)
    channels: dict[str, GuideChannelRecord] = {}
    try:
        for record in reader:
            if isinstance(record, GuideChannelRecord):
                channels[record.xmltv_id] = record
            else:
                spool.add(record.channel_id, programme_values(record))
    except BaseException:
        spool.close()
        raise
    return channels, reader.report


def stage_guide_file(
    path: str,
    spool_path: str,
    progress_path: str | None,
    now: datetime,
    window: ImportWindow | None,
) -> tuple[dict[str, GuideChannelRecord], ImportReport]:
    """Worker entry: parse the guide at ``path``, spool its programmes to
    ``spool_path`` (an existing, empty file) and return its channels and report."""
    with contextlib.ExitStack() as stack:
        progress: ProgressCallback | None = None
        if progress_path is not None:
            progress = _progress_writer(stack.enter_context(open(progress_path, "r+b")))
        spool = Spool(stack.enter_context(open(spool_path, "wb")))
        channels, report = spool_guide(path, spool, now=now, window=window, progress=progress)
        spool.flush()
    return channels, report


def _progress_writer(file: IO[bytes]) -> ProgressCallback:
    fd = file.fileno()

    def progress(done: int, total: int | None) -> None:
        os.pwrite(fd, _PROGRESS.pack(done, -1 if total is None else total), 0)

    return progress


def read_progress(path: str) -> tuple[int, int | None] | None:
    """The last ``(bytes_read, total)`` a worker wrote to ``path`` (``None`` before any)."""
    with open(path, "rb") as file:
        data = file.read(_PROGRESS.size)
    if len(data) < _PROGRESS.size:
        return None
    done, total = _PROGRESS.unpack(data)
    return done, None if total < 0 else total
