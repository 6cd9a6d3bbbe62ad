"""The recording's own start time, where the file states one.

Looked for in a text file's first lines, in this order:

1. a header line `<key>: <date and time>` (or `<key>,<date and time>`) whose key says when the
   recording was made: GaitUp Physilog's `Created on:`, and the `Start time` / `Recording start` /
   `Date` lines other device exports write;
2. the first data row's first cell, when it is an absolute time: an ISO date-time, or a Unix
   epoch time (seconds, ms, µs or ns since 1970, as SensorConnect and logging apps write them).

Returns None when neither is found (relative times from 0, the gaitmap files): the session is then
dated by its upload or stream start, or by the `session_date` the user gives.
"""

from __future__ import annotations

import datetime as dt
import re

_KEYS = re.compile(
    r"^\W*(created on|creation date|start time|start_time|recording start|recording started|"
    r"measurement start|start date|date)\s*[:,;=]\s*(.+?)\s*,*$",
    re.IGNORECASE,
)
_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y",
    "%d %b %Y %H:%M:%S",
    "%d %B %Y %H:%M:%S",
    "%b %d %Y %H:%M:%S",
)
# 2001-09-09 .. 2100-01-01 in seconds: a first time value in this range is an epoch time.
_EPOCH_S = (1.0e9, 4.102444800e9)


def parse_datetime(text: str) -> dt.datetime | None:
    """A date-time from ISO 8601 or one of the common export formats; None if it is none."""
    text = text.strip().strip('"').strip()
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _epoch(value: float) -> dt.datetime | None:
    for scale in (1.0, 1e3, 1e6, 1e9):
        seconds = value / scale
        if _EPOCH_S[0] <= seconds < _EPOCH_S[1]:
            return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return None


def recording_start(data: bytes, max_lines: int = 40) -> dt.datetime | None:
    """The start time stated in a text recording's first `max_lines` lines, or None."""
    if b"\x00" in data[:4096]:
        return None
    head = data[:65536].decode("utf-8", errors="replace").splitlines()[:max_lines]
    for line in head:
        match = _KEYS.match(line)
        if match:
            found = parse_datetime(match.group(2))
            if found is not None:
                return found
    for line in head:
        first = re.split(r"[,;\t]", line.strip(), maxsplit=1)[0].strip().strip('"')
        if not first or not (first[0].isdigit() or first[0] in "+-."):
            continue
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", first):
            return parse_datetime(first)
        try:
            value = float(first)
        except ValueError:
            continue
        return _epoch(value)  # the first numeric row decides: relative times give None
    return None
