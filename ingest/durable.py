"""Durability on disk: what makes a written or renamed file survive a crash."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: str | Path) -> None:
    """fsync a directory, so entries created or renamed in it (e.g. by `os.replace`) are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kernel_release() -> tuple[int, ...]:
    numbers = []
    for part in platform.release().split("-", 1)[0].split(".")[:2]:
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _libc_syncfs():
    """libc's `syncfs`, or None where a file system sync cannot stand for per-file fsyncs: not
    Linux, or a kernel before 5.8, whose `syncfs` did not report write-back errors."""
    if not sys.platform.startswith("linux") or _kernel_release() < (5, 8):
        return None
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int
    return syncfs


_SYNCFS = _libc_syncfs()
FILE_SYSTEM_SYNC = _SYNCFS is not None  # whether `sync_file_system` is available here


def sync_file_system(fd: int) -> None:
    """Make every file of the file system that holds open file `fd` durable, in one call (Linux
    `syncfs(2)`: "the same guarantees as fsync() called on every file in the ... file system";
    since 5.8 it reports a write-back error of any of them). Also writes back other data waiting on
    that file system. OSError on failure; RuntimeError where not `FILE_SYSTEM_SYNC`."""
    if _SYNCFS is None:
        raise RuntimeError("syncfs is not available on this system (Linux >= 5.8 only)")
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"syncfs: {os.strerror(code)}")


def write_atomic(path: str | Path, content: bytes | Callable[[BinaryIO], object]) -> Path:
    """Replace the file at `path` atomically and durably with `content` (bytes, or a function that
    writes into the open binary file).

    The content goes to `.NAME.<uuid>.tmp` beside the target (so a crash leaves the old file or the
    new one, never half of one; callers sweep leftover `.*.tmp` files), is fsynced, renamed over
    the target with `os.replace`, and the directory is fsynced. Creates the parent folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as fh:
            if isinstance(content, bytes | bytearray | memoryview):
                fh.write(content)
            else:
                content(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path
