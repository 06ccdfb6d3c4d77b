"""The archive of dropped log entries: gzip members appended to a file per day, read as one
stream by gzip.open and zcat, and a failed append taking nothing of the file with it."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess

import pytest

from app.storage.archive import Archive, read_lines


def test_an_archive_file_is_one_gzip_stream_across_appends(tmp_path):
    archive = Archive(tmp_path / "deep" / "er", "guess", "100")
    assert archive.append("2036-11-01", [{"id": "1-0", "name": "Zoë"}]) == 1
    assert archive.append("2036-11-01", []) == 0
    assert archive.append("2036-11-01", [{"id": "2-0"}, {"id": "3-0"}]) == 2
    path = archive.path("2036-11-01")
    assert path == tmp_path / "deep" / "er" / "guess" / "100" / "2036-11-01.ndjson.gz"
    assert [line["id"] for line in read_lines(path)] == ["1-0", "2-0", "3-0"]
    with gzip.open(path, "rt", encoding="utf-8") as file:
        assert file.read().splitlines()[0] == '{"id":"1-0","name":"Zoë"}'
    zcat = shutil.which("zcat") or shutil.which("gzip")
    if zcat:
        args = [zcat] if zcat.endswith("zcat") else [zcat, "-dc"]
        out = subprocess.run([*args, str(path)], capture_output=True, check=True).stdout
        assert out.decode().count("\n") == 3


def test_an_append_that_fails_leaves_the_file_whole(tmp_path, monkeypatch):
    archive = Archive(tmp_path, "guess", "100")
    archive.append("2036-11-01", [{"id": "1-0"}])
    size = archive.path("2036-11-01").stat().st_size
    real_write = os.write

    def half_then_full(fd: int, data) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        archive.append("2036-11-01", [{"id": "2-0"}])
    monkeypatch.undo()
    assert archive.path("2036-11-01").stat().st_size == size
    assert [line["id"] for line in read_lines(archive.path("2036-11-01"))] == ["1-0"]
