"""The archive of log entries a compaction drops: gzip files of JSON lines, one file per day.

A family's entries go to ``<root>/<game>/<variant>/<YYYY-MM-DD>.ndjson.gz``, the day being the
UTC day an entry was achieved. Each append is one gzip member written at the end of the file,
so a file is a concatenation of members, which ``zcat`` and :func:`gzip.open` read as one
stream. An append is on disk (file and, for a new file, its directory entry) before
:meth:`Archive.append` returns: the caller drops the entries from Redis only after that.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class Archive:
    """The archive files of one board family under ``root``."""

    def __init__(self, root: str | os.PathLike[str], game: str, variant: str) -> None:
        # Game slugs and variants match narrow patterns (no separator, no dot first), so they
        # are safe as directory names.
        self.root = Path(root)
        self.folder = self.root / game / variant

    def path(self, day: str) -> Path:
        """The file of entries achieved on ``day`` (``YYYY-MM-DD``)."""
        return self.folder / f"{day}.ndjson.gz"

    def append(self, day: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Append ``records`` as JSON lines to the file of ``day``, durably; how many."""
        lines = [
            json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records
        ]
        if not lines:
            return 0
        member = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
        path = self.path(day)
        _make_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(member)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                # A member cut short (a full disk) would make the rest of the file unreadable:
                # take it back, so the file stays whole members. A killed process leaves whole
                # members too (one write to a regular file is not torn by a signal); a machine
                # that loses power mid-write may leave a torn last member.
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if size == 0:
            _fsync_dir(path.parent)  # the new file's name survives a power loss too
        return len(lines)


def read_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of an archive file, in the order they were appended."""
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _make_dirs(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(created.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # Windows opens no directory as a file; NTFS journals the entry
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
