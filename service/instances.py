"""Server processes sharing one data folder: who is alive, by file locks the kernel releases.

Each server process (`strideflow serve`, one per `--workers`) holds an exclusive `flock` on
`<data_dir>/instances/<id>.lock` for its lifetime. Another process tells whether it is alive by
trying to take that lock: the kernel drops it the moment its holder dies (killed, crashed), so a
job a dead process claimed is queued again at once, with no lease to wait out. The data folder
must be on a local file system (flock is not shared between hosts on NFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import uuid
from pathlib import Path

INSTANCES_DIRNAME = "instances"
SUFFIX = ".lock"


def try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path` (created if missing), or None if
    another open file holds it (another process, or another descriptor of this one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock of `try_lock` (closing the descriptor)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


class Instance:
    """This server process's liveness lock under `data_dir`.

    Attributes
    ----------
    id
        `<host>-<pid>-<random>`: stored with the jobs it claims (`jobs.claimed_by`) and the live
        messages it publishes.
    """

    def __init__(self, data_dir: str | Path):
        self.folder = Path(data_dir) / INSTANCES_DIRNAME
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._fd: int | None = None

    def acquire(self) -> Instance:
        self._fd = try_lock(self.folder / f"{self.id}{SUFFIX}")
        if self._fd is None:  # a fresh random id: only a broken file system gets here
            raise RuntimeError(f"could not lock {self.folder / self.id}{SUFFIX}")
        return self

    def release(self) -> None:
        unlock(self._fd)
        self._fd = None
        with contextlib.suppress(OSError):
            (self.folder / f"{self.id}{SUFFIX}").unlink()

    def is_alive(self, instance_id: str | None) -> bool:
        """Whether the server process `instance_id` still runs (this one is)."""
        if instance_id is None:
            return False
        if instance_id == self.id:
            return self._fd is not None
        path = self.folder / f"{instance_id}{SUFFIX}"
        if not path.exists():
            return False
        fd = try_lock(path)
        if fd is None:
            return True
        unlock(fd)  # (the file of a dead process stays: removing it could race a new holder)
        return False

    def others(self) -> list[str]:
        """Ids of the other live server processes on this data folder."""
        if not self.folder.is_dir():
            return []
        ids = [p.name[: -len(SUFFIX)] for p in sorted(self.folder.glob(f"*{SUFFIX}"))]
        return [i for i in ids if i != self.id and self.is_alive(i)]
