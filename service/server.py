"""uvicorn with read and idle timeouts, so slow or silent clients cannot hold connections.

- idle keep-alive connections close after `keep_alive_timeout_s` (uvicorn `timeout_keep_alive`);
- a client that owes bytes of a request (its headers, or a body it is sending) and sends none for
  `request_read_timeout_s` is disconnected (`ReadTimeoutH11Protocol`; uvicorn itself waits for
  them forever). The timer runs only while the server waits for the client: not while the app
  works on a complete request, nor while the server has paused reading (its own back-pressure);
- an incomplete request head is limited to h11's `h11_max_incomplete_event_size` (64 KiB);
- an answer's status line and headers go out in the same packet as its body (`CoalescingTransport`):
  uvicorn writes them separately, and on loopback each write is a system call that runs the
  receiver's TCP input too (~0.2 ms of server CPU per request on 2 cores, issue 19);
- WebSocket peers are pinged every `ws_ping_interval_s` and dropped when a pong does not come
  within `ws_ping_timeout_s`; a live stream's hello must come within `HELLO_TIMEOUT_S` (10 s).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")
MAX_INCOMPLETE_EVENT_BYTES = 64 * 1024


class CoalescingTransport:
    """A transport whose writes made in one turn of the event loop go out as one write at its end.

    Everything else is the wrapped transport's; `close` writes what is pending first, `abort` drops it.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that drops a connection whose client stops sending a request.

    `read_timeout_s` is a class attribute: uvicorn builds the protocol itself, so a configured
    subclass (`with_read_timeout`) is handed to it.
    """

    read_timeout_s: float = 30.0
    _read_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_read_timeout(cls, seconds: float) -> type[ReadTimeoutH11Protocol]:
        return type(cls.__name__, (cls,), {"read_timeout_s": float(seconds)})

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)
        self._arm_read_timer()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol gets the socket's own transport (its frames are written as they come).
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()
            self.transport = self.transport._transport
        super().handle_websocket_upgrade(event)

    def data_received(self, data: bytes) -> None:
        self._arm_read_timer()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket (which has its own pings)
        waiting_for_client = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
        if not waiting_for_client or self.flow.read_paused:
            self._arm_read_timer()  # the server, not the client, is the one to act: look again later
            return
        log.info("closing a connection from %s: no request bytes for %g s", self.client, self.read_timeout_s)
        self.transport.close()


def uvicorn_options(settings: ServiceSettings) -> dict:
    """Keyword arguments of `uvicorn.run`/`uvicorn.Config` that set the timeouts above."""
    return {
        "http": ReadTimeoutH11Protocol.with_read_timeout(settings.request_read_timeout_s),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": MAX_INCOMPLETE_EVENT_BYTES,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
        "access_log": settings.access_log,
    }
