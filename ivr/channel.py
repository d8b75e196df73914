"""The thin asyncio shell around :class:`ivr.agi.AgiParser`: one FastAGI connection = one channel.

Every read has a deadline; end of stream ends the session (never a loop re-reading an empty buffer);
an out-of-band ``HANGUP`` is remembered and the in-flight command still waits for its own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque

import structlog

from ivr.agi import AgiHangup, AgiItem, AgiParser, AgiProtocolError, AgiReply, AgiRequest, encode_command

READ_CHUNK = 4096
log = structlog.get_logger("ivr.agi")
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class ChannelGone(Exception):
    """The FastAGI connection ended (Asterisk closed it, or the caller hung up and we stop)."""


class CommandFailed(Exception):
    """Asterisk answered a command with 510/511/520 (or a 200 whose result says it failed)."""

    def __init__(self, command: str, reply: AgiReply) -> None:
        self.command, self.reply = command, reply
        detail = " | ".join(reply.lines) or f"{reply.code}"
        super().__init__(f"AGI {command} failed: {detail}")


class AgiChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._parser = AgiParser()
        self._pending: deque[AgiItem] = deque()
        self.hung_up = False
        self.request: AgiRequest | None = None
        self._sock: socket.socket | None = writer.get_extra_info("socket")

    def _quickack(self) -> None:
        """ACK at once what Asterisk sends. GOSUB answers in two writes (``100 Trying``, then the result);
        with our ACK delayed (up to 40 ms on Linux) Nagle holds Asterisk's second write until it comes:
        every GOSUB cost 40 ms. The kernel clears the flag as it goes, so it is set before each read."""
        if self._sock is not None and _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    async def _next(self) -> AgiItem:
        while not self._pending:
            self._quickack()
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise ChannelGone("Asterisk closed the FastAGI connection")
            for item in self._parser.feed(data):
                if isinstance(item, AgiHangup):
                    self.hung_up = True
                else:
                    self._pending.append(item)
        return self._pending.popleft()

    async def read_request(self, timeout: float) -> AgiRequest:
        """The request headers, within ``timeout`` seconds (a silent or garbage peer is dropped)."""
        async with asyncio.timeout(timeout):
            item = await self._next()
        if not isinstance(item, AgiRequest):  # the parser yields the request first, always
            raise AgiProtocolError(f"expected the AGI request, got {item!r}")
        self.request = item
        return item

    async def command(self, command: str, *args: str, timeout: float, last: bool = False) -> AgiReply:
        """Send one command and wait (at most ``timeout`` s) for its reply. Non-200 -> CommandFailed.

        ``last``: also end our side of the session with the command, so Asterisk leaves AGI as soon as the
        command has run, without waiting for us to read the reply and close (the reply is still read)."""
        self._writer.write(encode_command(command, *args))
        if last and self._writer.can_write_eof():
            self._writer.write_eof()
        async with asyncio.timeout(timeout):
            await self._writer.drain()
            item = await self._next()
        if not isinstance(item, AgiReply):
            raise AgiProtocolError(f"expected a reply to {command}, got {item!r}")
        log.debug("agi.command", command=command, args=args, code=item.code, result=item.result,
                  data=item.data, hung_up=self.hung_up)
        if not item.ok:
            raise CommandFailed(command, item)
        return item

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()
