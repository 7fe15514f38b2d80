"""Atomic writes: fsync before the rename, nothing half-written on errors or a full disk, stale parts swept."""

from __future__ import annotations

import errno
import os

import pytest

from xai import io
from xai.io import DiskFullError, atomic_path, remove_stale_parts, write_json, write_text


def test_write_is_fsynced_then_renamed(tmp_path, monkeypatch):
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        calls.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "a.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_full_disk_is_one_line_and_no_partial_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError) as err:
        write_json(tmp_path / "summary.json", {"a": 1})
    assert "disk full while writing" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_nan_never_reaches_a_json_file(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"v": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_stale_parts_of_dead_processes_are_removed(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stale = tmp_path / "figs" / f".sample0_x.{io._HOST}.{dead}.abc123.part.png"
    mine = tmp_path / f".summary.{io._HOST}.{os.getpid()}.def456.part.json"
    other_host = tmp_path / f".summary.elsewhere-node.{dead}.ghi789.part.json"
    stale.parent.mkdir()
    for p in (stale, mine, other_host):
        p.write_text("partial")
    assert remove_stale_parts(tmp_path) == 1
    assert not stale.exists() and mine.exists() and other_host.exists()
