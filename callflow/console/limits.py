"""Guards in front of the console's routes, before any parsing: the ``Host`` header must be one of the
console's names (DNS rebinding), and a request body may not exceed its route's limit (413)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_names(bind_host: str, configured: Iterable[str]) -> frozenset[str]:
    """The ``Host`` names the console answers to: loopback names, the bind address (unless it is the
    any-address) and the configured ones, compared as :func:`host_of` gives them."""
    names = set(LOOPBACK_NAMES) | {host_of(name) for name in configured}
    if bind_host not in ("0.0.0.0", "::", ""):  # noqa: S104 -- compared, not bound
        names.add(host_of(bind_host))
    return frozenset(names)


def host_of(header: str) -> str:
    """``Host`` header -> bare lower-case name: ``[::1]:8112`` -> ``::1``, ``Console.Example.:443`` ->
    ``console.example``."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": "refused", "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    """Answers 421 to a request whose ``Host`` is not one of ``names`` (400 when it has none): a page on
    another site whose name was re-pointed at this address cannot talk to the console in the browser."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"]
        if len(sent) != 1:
            await _refuse(send, 400, "the request needs exactly one Host header")
            return
        if host_of(sent[0]) not in self.names:
            await _refuse(send, 421, f"Host {sent[0][:100]!r} is not one of this console's names; if "
                                     "browsers reach the console by this name, add it to [console] "
                                     "allowed_hosts in the settings file")
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Reads each request body before the route does, up to its limit (``per_path`` or ``default``
    bytes): a larger ``Content-Length`` is refused at once, a chunked body as soon as it passes the
    limit, both with 413 and the connection closed. Memory held is at most the limit per request."""

    def __init__(self, app: ASGIApp, default: int, per_path: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.per_path = dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(str(scope.get("path", "")), self.default)
        too_big = f"request body larger than {limit} bytes: refused before reading it"
        lengths = [v for k, v in scope.get("headers", []) if k == b"content-length"]
        if lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                await _refuse(send, 400, "invalid Content-Length header")
                return
            if int(lengths[0]) > limit:
                await _refuse(send, 413, too_big)
                return
        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client left: the route hears it
                break
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _refuse(send, 413, too_big)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered: Message = first or {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return buffered
            return await receive()  # later: the disconnect a streaming response waits for

        await self.app(scope, replay, send)
