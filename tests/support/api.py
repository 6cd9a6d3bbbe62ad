"""HTTP-service helpers shared by the service tests: upload a file, wait for its job, crafted files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

ATHLETE, SESSION, DATE = "A001", "S01", "2025-01-11"


def wait_job(client: TestClient, headers: dict, job_id: str, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {job}")


def upload(client, headers, path: Path, **fields):
    data = {"athlete_id": ATHLETE, "session_id": SESSION, **fields}
    return client.post(
        "/v1/recordings", headers=headers, files={"file": (path.name, path.read_bytes())}, data=data
    )


def standing_csv(seconds: float = 5.0, rate_hz: float = 100.0, tap_dps: float = 0.0) -> bytes:
    """A recording of a foot standing still; `tap_dps`: one 0.1 s turn of the sensor at that rate
    (a tap: ingest cannot tell it from walking, the analysis finds no stride)."""
    rng = np.random.default_rng(0)
    n = int(seconds * rate_hz)
    acc = np.c_[rng.normal(0, 0.02, (n, 2)), 9.81 + rng.normal(0, 0.02, n)]
    gyr = rng.normal(0, 0.3, (n, 3))
    gyr[n // 2 : n // 2 + int(0.1 * rate_hz), 1] += tap_dps
    rows = np.c_[np.arange(n) / rate_hz, acc, gyr]
    lines = ["t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z", *(",".join(f"{v:.5f}" for v in r) for r in rows)]
    return ("\n".join(lines) + "\n").encode()


def png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
