"""The one rule for ids that name things on disk and in the database: athletes, sessions, teams, devices.

An id is 1-128 ASCII letters, digits, '_', '-' or '.', starts with a letter or digit and holds no
'..' (so that as a path component it can neither climb out of its folder nor mean two things).
The whole string must match (`re.fullmatch`): a `$` anchor alone would let a trailing newline
through. Every entry point (HTTP forms and paths, the WebSocket hello, write-ahead logs, result
partitions, the database helpers) checks ids with `check_id` before anything is stored.
"""

from __future__ import annotations

import re

from strideflow.hardware.errors import StrideflowError

ID_MAX_LENGTH = 128
DEVICE_ID_MAX_LENGTH = 16  # the packet header's device id field (hardware.packets)
# Anchored for OpenAPI/pydantic `pattern` (searched, not full-matched there); Python code uses fullmatch.
ID_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{ID_MAX_LENGTH - 1}}}$")
ID_RULE = f"1-{ID_MAX_LENGTH} letters, digits, '_', '-' or '.', starting with a letter or digit, no '..'"


class InvalidIdError(StrideflowError):
    """An id that breaks the rule above; the message names the field and the value."""

    def __init__(self, name: str, value: object, max_length: int = ID_MAX_LENGTH):
        self.field = name
        rule = ID_RULE.replace(f"1-{ID_MAX_LENGTH}", f"1-{max_length}")
        super().__init__(f"{name}={_shown(value)} is not a valid id: use {rule}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def is_valid_id(value: object, max_length: int = ID_MAX_LENGTH) -> bool:
    """Whether `value` is a str that follows the id rule (at most `max_length` characters)."""
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and ID_PATTERN.fullmatch(value) is not None
        and ".." not in value
    )


def check_id(name: str, value: object, max_length: int = ID_MAX_LENGTH) -> str:
    """`value` if it is a valid id, else InvalidIdError naming the field `name`."""
    if not is_valid_id(value, max_length):
        raise InvalidIdError(name, value, max_length)
    return value  # type: ignore[return-value]
