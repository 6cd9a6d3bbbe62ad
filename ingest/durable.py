"""Durability on disk: what makes a written or renamed file survive a crash."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    """fsync a directory, so entries created or renamed in it (e.g. by `os.replace`) are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
