"""uvicorn with httptools, one write per answer, and read and idle timeouts, so slow or silent
clients cannot hold connections.

- requests are parsed by httptools (llhttp, C; uvicorn's fast protocol), not the pure-Python h11:
  about 0.1-0.2 ms less server CPU per request (issue 19);
- idle keep-alive connections close after `keep_alive_timeout_s` (uvicorn `timeout_keep_alive`);
- a client that owes bytes of a request (its head, or a body it is sending) and sends none for
  `request_read_timeout_s` is disconnected (`ReadTimeoutProtocol`; uvicorn itself waits for
  them forever). The timer runs only while the server waits for the client: not while the app
  works on a complete request, nor while the server has paused reading (its own back-pressure);
- a request head is limited to `MAX_HEAD_BYTES` (64 KiB; larger: 400), which llhttp does not bound;
- an answer's status line and headers go out in the same packet as its body (`CoalescingTransport`):
  uvicorn writes them separately, and on loopback each write is a system call that runs the
  receiver's TCP input too (~0.2 ms of server CPU per request on 2 cores, issue 19);
- threads hand the interpreter over every `switch_interval_s` (0.5 ms, not Python's 5 ms), so the
  event loop is not held back by the live store's thread (`switch_interval`);
- WebSocket peers are pinged every `ws_ping_interval_s` and dropped when a pong does not come
  within `ws_ping_timeout_s`; a live stream's hello must come within `HELLO_TIMEOUT_S` (10 s).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")
MAX_HEAD_BYTES = 64 * 1024
PROTOCOL = "strideflow.service.server:ReadTimeoutProtocol"  # by name, for `serve --workers N`


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


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that drops a connection whose client stops sending a request,
    writes each answer once, and bounds a request head.

    llhttp has no head limit, so the head is counted two ways, each never more than its true
    size: the URL and header fields the parser hands over (a complete head over `max_head_bytes`
    is refused with 400, as h11 refused it), and the reads that end inside a head (so a head that
    never ends is dropped too, at most one read past the limit). `read_timeout_s` is a class
    attribute: uvicorn builds the protocol itself, so a configured subclass (`configured`), or
    the class by name with the attribute set in the worker process, is handed to it.
    """

    read_timeout_s: float = 30.0
    max_head_bytes: int = MAX_HEAD_BYTES
    _read_timer: asyncio.TimerHandle | None = None
    _in_head = False  # from a request's first byte to the end of its head
    _begun = 0  # requests begun on this connection
    _head_parsed = 0  # bytes of the current head's URL and header fields
    _head_read = 0  # bytes of the reads that ended inside the current head

    @classmethod
    def configured(cls, read_timeout_s: float) -> type[ReadTimeoutProtocol]:
        return type(cls.__name__, (cls,), {"read_timeout_s": float(read_timeout_s)})

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)
        self._arm_read_timer()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol gets the socket's own transport (its frames are written as they come).
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()
            self.transport = self.transport._transport
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        self._arm_read_timer()
        was_idle = not self._in_head and (self.cycle is None or not self.cycle.more_body)
        begun = self._begun
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # This read ended inside a head. All of it is that head when the head began before it, or
        # with it; when an earlier request ended within it, it is not counted (a bound, not exact).
        if self._begun == begun or (was_idle and self._begun == begun + 1):
            self._head_read += len(data)
            if self._head_read > self.max_head_bytes:
                self.logger.warning("Invalid HTTP request received: head over %d bytes", self.max_head_bytes)
                self.send_400_response("Invalid HTTP request received.")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    # llhttp's callbacks: uvicorn's, and the head's size. An exception stops the parser, and
    # uvicorn answers 400.
    def on_message_begin(self) -> None:
        self._in_head, self._head_parsed, self._head_read = True, 0, 0
        self._begun += 1
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _count_parsed(self, n: int) -> None:
        self._head_parsed += n
        if self._head_parsed > self.max_head_bytes:
            raise ValueError(f"request head over {self.max_head_bytes} bytes")

    def _waiting_for_client(self) -> bool:
        """Whether the client owes bytes: a request (next, or the rest of its head), or a body."""
        return self._in_head or self.cycle is None or self.cycle.more_body or self.cycle.response_complete

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
        if not self._waiting_for_client() or self.flow.read_paused:
            self._arm_read_timer()  # the server, not the client, is the one to act: look again later
            return
        log.info("closing a connection from %s: no request bytes for %g s", self.client, self.read_timeout_s)
        self.transport.close()


def uvicorn_options(settings: ServiceSettings) -> dict:
    """Keyword arguments of `uvicorn.run`/`uvicorn.Config` that set the timeouts above."""
    return {
        "http": ReadTimeoutProtocol.configured(settings.request_read_timeout_s),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
        "access_log": settings.access_log,
    }


def switch_interval(settings: ServiceSettings) -> None:
    """Set this process's thread switch interval (`sys.setswitchinterval`) to the settings'.

    A thread that wants the interpreter waits up to the interval for the one holding it, and the
    event loop wants it back after every I/O callback. With the live store's thread busy beside
    it at the default 5 ms, acknowledgements fell from 2,000 to 700-1,300 per second for ~8 s at
    200 pods (idle machine, one run); at 0.5 ms they held 2,000 (benchmarks/README.md, session 14)."""
    sys.setswitchinterval(settings.switch_interval_s)
