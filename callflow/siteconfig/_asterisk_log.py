"""What Asterisk refused while reloading, read from its log.

On a reload Asterisk does not fail an object it cannot parse: it logs why and keeps running the object's
previous definition ("Retaining existing configuration for object of type 'endpoint' with id 'op7'"), or
drops a new one. Nothing over AMI says so (the reload answers "Success"), and the files on disk then hold
a configuration Asterisk does not run: the next restart drops the object. The log is the only complete
account, so ``config apply`` reads the lines Asterisk wrote between the reload and the end of verification
(``messages.log`` of pbx-config/logger.conf: notice, warning and error).

:func:`refusals` is pure (lines in, refusals out); :class:`LogWatch` is the small reader around it.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

# The file pbx-config/logger.conf writes notices, warnings and errors to (a unit test holds the contract).
MESSAGES_LOG = "messages.log"

_LINE = re.compile(r"^\[(?P<at>[^\]]+)\] (?P<level>[A-Z]+)\[(?P<thread>\d+)\](?:\[[^\]]*\])? "
                   r"(?P<source>[^:\s]+): (?P<message>.*)$")
# Where Asterisk reports a configuration it could not take: the generic parsers and object loaders, and
# the modules a site apply reloads (their warnings and errors during the reload are about their files).
_CONFIG_SOURCES = frozenset({
    "config.c", "config_options.c", "sorcery.c", "res_sorcery_config.c", "acl.c", "format_cap.c",
    "pbx_config.c", "app_queue.c", "manager.c", "res_pjsip.c", "res_musiconhold.c", "res_rtp_asterisk.c",
    "features_config.c", "logger.c",
})
_PJSIP_SOURCE = re.compile(r"^res_pjsip[\w/]*\.c$")
# Warnings that are not refusals: Asterisk takes the configuration and says something about it.
_BENIGN = (
    re.compile(r"^Odd start value for RTP port"),  # rtpstart rounded up to even; the range still works
    re.compile(r"^No music on hold classes configured"),  # no music installed yet: callers hear ringing
)
_UNKNOWN_OPTION = re.compile(r"^Could not find option suitable for category '(?P<object>[^']*)' named "
                             r"'(?P<option>[^']*)'")
_BAD_VALUE = re.compile(r"^Error parsing (?P<option>[^=\s]+)=")
_NOT_CREATED = re.compile(r"^Could not create an object of type '(?P<type>[^']*)' with id "
                          r"'(?P<object>[^']*)'")
_RETAINED = re.compile(r"^Retaining existing configuration for object of type '(?P<type>[^']*)' with id "
                       r"'(?P<object>[^']*)'")
_QUEUE_KEYWORD = re.compile(r"^Unknown keyword in queue '(?P<object>[^']*)': (?P<option>\S+)")
_ACL = re.compile(r"for manager user '(?P<object>[^']*)'")


_LOG_DIR = re.compile(r"^\s*astlogdir\s*=>?\s*(?P<dir>[^;\s]+)", re.MULTILINE)
DEFAULT_LOG_DIR = Path("/var/log/asterisk")


def default_asterisk_log(etc_dir: Path) -> Path:
    """The log ``config apply`` reads for a production Asterisk: ``messages.log`` in the ``astlogdir`` of
    ``etc_dir/asterisk.conf`` (Asterisk's default ``/var/log/asterisk`` when it sets none)."""
    try:
        text = (etc_dir / "asterisk.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    match = _LOG_DIR.search(text)
    return (Path(match["dir"]) if match else DEFAULT_LOG_DIR) / MESSAGES_LOG


@dataclass
class Refusal:
    """One object (or one line of a file) Asterisk did not take, with the log lines that say so."""

    lines: list[str] = field(default_factory=list)
    kind: str = ""  # "endpoint", "queue", "manager user"... ("" when the line names no object)
    name: str = ""
    options: list[str] = field(default_factory=list)
    retained: bool = False

    def describe(self) -> str:
        quoted = " | ".join(f'"{line}"' for line in self.lines)
        what = f"{self.kind} {self.name}".strip() or "a configuration line"
        options = f" (option {', '.join(self.options)})" if self.options else ""
        after = ("; it keeps running its previous definition, which the next restart would drop"
                 if self.retained else "")
        return f"Asterisk refused {what}{options}{after}. Asterisk's log: {quoted}"


def refusals(text: str) -> list[Refusal]:
    """The refusals in a stretch of Asterisk's log (see the module's notes for what counts)."""
    out: list[Refusal] = []
    pending: dict[str, Refusal] = {}  # per thread: option errors waiting for the object they belong to
    by_object: dict[tuple[str, str], Refusal] = {}
    for raw in text.splitlines():
        match = _LINE.match(raw.strip())
        if not match:
            continue
        level, message, thread = match["level"], match["message"], match["thread"]
        line = raw.strip()
        if retained := _RETAINED.match(message):
            refusal = by_object.get((retained["type"], retained["object"]))
            if refusal is None:
                refusal = Refusal(kind=retained["type"], name=retained["object"])
                out.append(refusal)
            refusal.lines.append(line)
            refusal.retained = True
            continue
        source = match["source"]
        if level not in {"ERROR", "WARNING"} or any(b.match(message) for b in _BENIGN):
            continue
        if source not in _CONFIG_SOURCES and not _PJSIP_SOURCE.match(source):
            continue
        if created := _NOT_CREATED.match(message):
            refusal = pending.pop(thread, None) or Refusal()
            refusal.kind, refusal.name = created["type"], created["object"]
            refusal.lines.append(line)
            by_object[(refusal.kind, refusal.name)] = refusal
            out.append(refusal)
            continue
        refusal = pending.setdefault(thread, Refusal())
        refusal.lines.append(line)
        if found := _UNKNOWN_OPTION.match(message) or _BAD_VALUE.match(message):
            refusal.options.append(found["option"])
        elif found := _QUEUE_KEYWORD.match(message):
            refusal.kind, refusal.name = "queue", found["object"]
            refusal.options.append(found["option"])
            out.append(pending.pop(thread))
        elif found := _ACL.search(message):
            refusal.kind, refusal.name = "manager user", found["object"]
            out.append(pending.pop(thread))
        elif source not in {"config_options.c", "format_cap.c", "acl.c"}:
            out.append(pending.pop(thread))  # a line that stands alone (a file's syntax, a module's value)
    out.extend(pending.values())  # option errors whose object line never came
    return out


class LogWatch:
    """Reads what Asterisk appends to its log from a mark on. Asterisk writes log lines from its own
    logger thread, so a line about a reload may land a moment after the reload's answer: reading waits
    until the file has stopped growing for ``settle`` seconds (at most ``limit``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode = 0
        self._offset = 0

    def mark(self) -> None:
        """Remember the end of the log. Raises :class:`OSError` if it cannot be read."""
        with self.path.open("rb") as fh:
            stat = os.fstat(fh.fileno())
        self._inode, self._offset = stat.st_ino, stat.st_size

    async def read_new(self, settle: float = 0.3, limit: float = 3.0) -> str:
        return await asyncio.to_thread(self._read_settled, settle, limit)

    def _read_settled(self, settle: float, limit: float) -> str:
        deadline = time.monotonic() + limit
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.path.stat().st_size
            if size != last:
                last, quiet_since = size, time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                break
            time.sleep(0.05)
        with self.path.open("rb") as fh:
            stat = os.fstat(fh.fileno())
            # rotated (new file) or truncated since the mark: what is there now is all new
            start = self._offset if stat.st_ino == self._inode and stat.st_size >= self._offset else 0
            fh.seek(start)
            return fh.read().decode("utf-8", errors="replace")
