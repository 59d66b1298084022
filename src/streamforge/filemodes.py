"""Private files: what StreamForge keeps on disk is readable by its own user only.

The data dir holds the SQLite database (the admin password hash, account
usernames, provider server URLs), its ``-wal``/``-shm`` files and the
credential key, so it is created ``0700`` and every file StreamForge writes
there ``0600``. Files are created with that mode in the ``open`` call itself
(never by changing the process-wide umask, which other threads share).

At start-up :func:`tighten_directory` removes the group and other permission
bits from the data dir and from each entry directly inside it (a ``0700``
directory already hides everything further down), logging one warning per
entry it changed. Only those bits are removed; the owner's bits are left as
they are, and symbolic links are neither followed nor changed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_GROUP_OTHER = 0o077


def tighten(path: Path) -> bool:
    """Remove group/other permission bits from ``path``; ``True`` if it changed.

    A missing path or a symbolic link is left alone. A change is logged as a
    warning; a path we may not change (owned by someone else) is logged too
    and otherwise left as it is.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & _GROUP_OTHER:
        return False
    mode = stat.S_IMODE(info.st_mode) & ~_GROUP_OTHER
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning(
            "cannot tighten permissions of %s (%s); other users can read it", path, exc.strerror
        )
        return False
    log.warning("tightened permissions of %s to %04o", path, mode)
    return True


def tighten_directory(directory: Path) -> None:
    """Tighten ``directory`` itself and every entry directly inside it."""
    tighten(directory)
    with os.scandir(directory) as entries:
        for entry in entries:
            tighten(Path(entry.path))


def create_private_file(path: Path) -> None:
    """Make sure ``path`` exists and is private: create it ``0600`` (empty),
    or tighten it if it already exists. Raises ``OSError`` if it cannot be opened
    for writing."""
    tighten(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
