"""`ingest.durable.sync_file_system`: one syncfs for every log of a file system (live commits).

Durability itself needs a power cut to test; these check the call and its errors, and when it is
used (Linux 5.8 or later, where syncfs reports write-back errors)."""

from __future__ import annotations

import os

import pytest

from strideflow.ingest import durable
from strideflow.ingest.wal import WriteAheadLog


@pytest.mark.skipif(not durable.FILE_SYSTEM_SYNC, reason="syncfs needs Linux 5.8 or later")
def test_sync_file_system_returns_on_an_open_log_and_names_the_error_on_a_closed_one(tmp_path):
    log = WriteAheadLog.open(tmp_path / "a.wal", {"device_id": "pod"})
    log.queue(b"packet")
    log.write_queued()
    durable.sync_file_system(log.fileno())
    assert log.device == os.stat(tmp_path / "a.wal").st_dev
    fd = log.fileno()
    log.close()
    with pytest.raises(OSError, match="syncfs"):
        durable.sync_file_system(fd)


@pytest.mark.parametrize(
    ("release", "parsed"),
    [("6.18.44-fc-v1252", (6, 18)), ("5.8.0-63-generic", (5, 8)), ("4.19.0", (4, 19)), ("5.10", (5, 10))],
)
def test_the_kernel_release_is_read_as_major_minor(monkeypatch, release, parsed):
    monkeypatch.setattr(durable.platform, "release", lambda: release)
    assert durable._kernel_release() == parsed


def test_no_syncfs_before_linux_5_8_or_off_linux(monkeypatch):
    monkeypatch.setattr(durable.platform, "release", lambda: "5.7.19")
    assert durable._libc_syncfs() is None  # its syncfs did not report write-back errors
    monkeypatch.setattr(durable.platform, "release", lambda: "6.1.0")
    monkeypatch.setattr(durable.sys, "platform", "darwin")
    assert durable._libc_syncfs() is None


def test_without_syncfs_the_call_says_so(monkeypatch):
    monkeypatch.setattr(durable, "_SYNCFS", None)
    with pytest.raises(RuntimeError, match="syncfs is not available"):
        durable.sync_file_system(0)
