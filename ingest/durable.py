"""Durability on disk: what makes a written or renamed file survive a crash."""

from __future__ import annotations

import os
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
