"""The FastAGI server: an engine component that runs the IVR tree for every call Asterisk sends it.

Our own asyncio server (not panoramisk's ``fast_agi.Application``, which spins on a peer that closes
before its headers and mis-reads an out-of-band HANGUP). Each connection is its own task with deadlines
on every read; whatever one session does (silence, garbage, errors, hang-ups) ends that session only.
A session that fails leaves no decision, and the dial plan sends the caller to the emergency queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from callflow.ami import EventItem
from callflow.lab import pbx_config_dir
from callflow.site_watch import SiteSource, file_signature
from ivr.agi import AgiProtocolError
from ivr.channel import AgiChannel, ChannelGone, CommandFailed
from ivr.prompts import PromptError, install
from ivr.rules import CheckedTree, TreeError, load_tree, parse_tree
from ivr.session import IvrSession, Timing
from ivr.settings import IvrSettings

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("ivr.server")


def default_tree_path() -> Path:
    return pbx_config_dir() / "ivr.toml"


def prepare_tree(path: Path, sounds_dir: Path | None) -> CheckedTree:
    """Check the tree, install its prompts (when a sounds dir is known), re-check with measured lengths."""
    checked = load_tree(path)
    if sounds_dir is None:
        return checked
    installed = install(checked.tree, sounds_dir)
    measured = {p.prompt_id: p.seconds for p in installed}
    return parse_tree(path.read_text(encoding="utf-8"), str(path), measured)


class IvrServer:
    """``handle`` ignores AMI events; ``run`` prepares the tree and serves FastAGI until cancelled."""

    name = "ivr"

    def __init__(self, settings: IvrSettings, *, port: int | None = None, sounds_dir: Path | None = None,
                 checked: CheckedTree | None = None, site: SiteSource | None = None,
                 follow_s: float = 1.0) -> None:
        self.settings = settings
        self.site = site  # the tree is the site's (unless [ivr] tree names one); followed while serving
        self.follow_s = follow_s
        self.tree_path: Path | None = None
        self.tree_reloaded = asyncio.Event()  # set at each swap (inline isolation: tests wait on it)
        self._tree_seen: tuple[Path | None, tuple[int, int, int] | None] = (None, None)
        self.port = settings.port if port is None else port
        self.sounds_dir = sounds_dir or settings.sounds_dir
        self.checked = checked
        self.timing = Timing(command_timeout_s=settings.command_timeout_s)
        self.listening = asyncio.Event()
        self.listen_failed = asyncio.Event()  # set while the port cannot be bound (retrying)
        self.bound_port: int | None = None
        self.active = 0
        self.idle = asyncio.Event()  # no session in progress (for tests and a clean stop)
        self.idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused: str | None = None  # why the tree was refused (then nothing listens)
        # Told "bound" / "failed" / "stopped" (ivr/gate.py opens the dial plan's gate only while bound).
        # Called from the thread that serves: the wiring hands it to the engine's loop.
        self.on_state: Callable[[str, int | None], None] | None = None

    async def handle(self, item: EventItem) -> None:
        return None

    async def run(self, engine: Engine | None = None) -> None:
        del engine
        if self.checked is None:
            path = self._current_tree()[0] or default_tree_path()
            self.tree_path = path
            self._tree_seen = self._current_tree()
            try:
                self.checked = await asyncio.to_thread(prepare_tree, path, self.sounds_dir)
            except (TreeError, PromptError, OSError) as exc:
                # Not listening is safe: the dial plan cannot reach us and sends every call to emergency.
                log.error(  # noqa: TRY400 - the message names rule, node and file:line; no traceback
                    "ivr.tree_refused", error=str(exc),
                    hint="fix the tree (siaga112 ivr check); calls go to the emergency queue meanwhile")
                self.refused = str(exc)
                return
        if self.settings.isolation == "thread":
            await self.serve_in_thread()
        else:
            await self.serve()

    async def serve_in_thread(self) -> None:
        """Serve on an event loop of its own, in its own thread, so that the IVR's replies to Asterisk
        never wait behind the engine's AMI event processing (a burst of calls is also a burst of AMI
        events). Cancelling this coroutine stops that loop and waits for the thread."""
        ready = threading.Event()
        inner: dict[str, Any] = {}

        async def body() -> None:
            inner["loop"], inner["task"] = asyncio.get_running_loop(), asyncio.current_task()
            ready.set()
            await self.serve()

        def main() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                asyncio.run(body())

        # The IVR thread must get the interpreter promptly when Asterisk answers it, even while the engine
        # thread is busy with a burst of AMI events: a shorter switch interval bounds that wait (5 ms
        # default, per wake-up).
        sys.setswitchinterval(min(sys.getswitchinterval(), self.settings.switch_interval_s))
        thread = threading.Thread(target=main, name="ivr-fastagi", daemon=True)
        thread.start()
        try:
            await asyncio.to_thread(thread.join)
        finally:
            if thread.is_alive() and await asyncio.to_thread(ready.wait, 5.0):
                inner["loop"].call_soon_threadsafe(inner["task"].cancel)
                await asyncio.to_thread(thread.join, 5.0)

    async def serve(self, retry_s: float = 2.0) -> None:
        assert self.checked is not None  # noqa: S101 - set by run() or the constructor
        while True:
            try:
                server = await asyncio.start_server(self._connection, self.settings.host, self.port,
                                                    reuse_address=True)
                break
            except OSError as exc:  # port taken: keep the engine up and retry
                # Whether calls then fail safe is the gate's to say (ivr.gate_closed): this process cannot
                # stop Asterisk from connecting to whatever holds the port.
                log.error(  # noqa: TRY400 - an expected condition, said in full; no traceback
                    "ivr.listen_failed", host=self.settings.host, port=self.port, error=str(exc),
                          retry_in_s=retry_s, hint="another process holds the FastAGI port "
                          f"(`ss -lntp sport = :{self.port}`); the engine closes the dial plan's gate to it")
                self._tell("failed", self.port)
                self.listen_failed.set()
                await asyncio.sleep(retry_s)
        self.listen_failed.clear()
        self.bound_port = server.sockets[0].getsockname()[1]
        self._tell("bound", self.bound_port)
        # The port is ours; calls reach us once the engine opened the gate (ivr.listening, ivr/gate.py).
        log.info("ivr.bound", host=self.settings.host, port=self.bound_port, tree=self.checked.source,
                 worst_path_s=round(self.checked.max_seconds, 1),
                 estimated_prompts=sorted(self.checked.estimated),
                 prompts_installed_in=str(self.sounds_dir) if self.sounds_dir else None)
        if self.sounds_dir is None:
            log.warning("ivr.prompts_not_installed", hint="set [ivr] sounds_dir or run `siaga112 ivr prompts "
                        "--sounds-dir DIR`; without audio the menus are silent")
        self.listening.set()
        try:
            async with server, asyncio.TaskGroup() as tasks:
                if self.tree_path is not None:
                    tasks.create_task(self._follow_tree())
                await server.serve_forever()
        finally:
            self.listening.clear()
            self._tell("stopped", self.bound_port)
            for task in list(self._tasks):
                task.cancel()

    def _tell(self, state: str, port: int | None) -> None:
        if self.on_state is not None:
            with contextlib.suppress(Exception):  # a broken listener never stops the IVR
                self.on_state(state, port)

    def _current_tree(self) -> tuple[Path | None, tuple[int, int, int] | None]:
        """The tree to run and its file signature: [ivr] tree when set, else the site's."""
        if self.settings.tree is not None or self.site is None:
            path = self.settings.tree or default_tree_path()
            return path, file_signature(path)
        return self.site.tree()

    async def _follow_tree(self) -> None:
        """A tree an admin applies is run by the next caller: each second, if the tree (or the site naming
        it) changed, prepare it (prompts whose words changed are generated) and swap it in. Sessions in
        progress finish on the tree they started with; a refused tree is logged and the old one kept."""
        while True:
            await asyncio.sleep(self.follow_s)
            seen = await asyncio.to_thread(self._current_tree)
            if seen == self._tree_seen or seen[0] is None or seen[1] is None:
                continue
            self._tree_seen = seen
            path = seen[0]
            try:
                checked = await asyncio.to_thread(prepare_tree, path, self.sounds_dir)
            except (TreeError, PromptError, OSError) as exc:
                log.error(  # noqa: TRY400 - the message names rule, node and file:line; no traceback
                    "ivr.tree_reload_refused", tree=str(path), error=str(exc),
                    action="the IVR keeps the tree it runs; fix the tree (siaga112 ivr check)")
                continue
            self.checked, self.tree_path = checked, path
            self.tree_reloaded.set()
            log.info("ivr.tree_reloaded", tree=str(path), prompts=len(checked.tree.prompts))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        channel = AgiChannel(reader, writer)
        self.active += 1
        self.idle.clear()
        try:
            if self.active > self.settings.max_sessions:
                log.warning("ivr.overloaded", active=self.active, limit=self.settings.max_sessions)
                return  # closing without a decision: the dial plan fails safe
            await self._session(channel)
        finally:
            await channel.close()
            self.active -= 1
            if self.active == 0:
                self.idle.set()
            if task is not None:
                self._tasks.discard(task)

    async def _session(self, channel: AgiChannel) -> None:
        checked = self.checked
        assert checked is not None  # noqa: S101 - serve() runs only with a tree
        bound = structlog.contextvars.bound_contextvars
        try:
            request = await channel.read_request(self.settings.header_timeout_s)
        except (TimeoutError, ChannelGone, AgiProtocolError, OSError) as exc:
            log.warning("ivr.bad_peer", error=str(exc) or type(exc).__name__)
            return
        with bound(uniqueid=request.uniqueid, channel=request.channel):
            session = IvrSession(checked, channel, sounds=request.arg(1), timing=self.timing)
            try:
                async with asyncio.timeout(session.deadline_s + self.timing.slack_s):
                    decision = await session.run()
            except ChannelGone:
                log.info("ivr.ended", reason="connection closed (caller hung up or Asterisk ended AGI)")
            except CommandFailed as exc:
                log.warning("ivr.failed", reason="command refused", error=str(exc))
            except (TimeoutError, AgiProtocolError, OSError) as exc:
                log.warning("ivr.failed", reason=type(exc).__name__, error=str(exc))
            except Exception:  # one broken session never takes the server down
                with contextlib.suppress(Exception):
                    log.exception("ivr.crashed")
            else:
                if decision is None:
                    log.info("ivr.ended", reason="caller hung up")
                else:
                    log.info("ivr.decision", node=decision.node, action=decision.action.action.value,
                             category=decision.action.category.value if decision.action.category else None)
