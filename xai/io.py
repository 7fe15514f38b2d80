"""Atomic file writes: a temporary name in the same folder, fsync, one rename, fsync of the folder.

A reader never sees a half-written file: after a kill, a power loss or a full disk, the final name
holds the old complete file or the new complete one. Temporary names carry the writing host and
process (`.<stem>.<host>.<pid>.<random>.part<suffix>`), so a later run can remove the ones a dead
process left behind (remove_stale_parts) without touching those of processes still writing, such as
other ranks or shards sharing the folder.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DiskFullError

__all__ = ["DiskFullError", "atomic_path", "remove_stale_parts", "write_csv", "write_json", "write_npz", "write_text"]

_UMASK = os.umask(0)
os.umask(_UMASK)
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_PART = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[^.]+\.part(\.[A-Za-z0-9]+)?$")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; fsync it and rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix, so writers that pick a format by extension work. A full
    disk raises DiskFullError naming the file; no temporary file is left behind either way.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem}.{_HOST}.{os.getpid()}.", suffix=f".part{path.suffix}", dir=path.parent
        )
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
    except OSError as exc:
        raise _disk_error(exc, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _disk_error(exc, path) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _disk_error(exc: OSError, path: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(str(path), os.strerror(exc.errno))
    return exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_parts(folder: str | Path) -> int:
    """Remove temporary files under folder left by processes of this host that no longer run; returns
    how many. Files of other hosts are left alone (their processes cannot be checked from here)."""
    removed = 0
    for p in Path(folder).rglob(".*.part*"):
        m = _PART.match(p.name)
        if m is None or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """rows as CSV: the columns `fields`, or every key of the rows in the order they first appear; None is ''."""
    columns = fields if fields is not None else list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    write_text(path, buf.getvalue())


def write_npz(path: str | Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
