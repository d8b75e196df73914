"""Apply a rendered site: write atomically, reload only the affected modules over AMI, verify over AMI
and in Asterisk's log (what it refused or retained, :mod:`._asterisk_log`), and on any failure restore the
previous files and reload them, by itself.

Reloads do not touch channels: calls in progress keep their bridges (a test holds a call up through an
apply). Files that no reload covers (``modules.conf``) are written but reported as needing a restart.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import structlog

from callflow.ami import AmiConnection, AmiEndpoint, AmiError, EventItem
from callflow.siteconfig._applied import TREE_NAME, applied_site_path, store_applied, tree_text
from callflow.siteconfig._asterisk_log import LogWatch, refusals
from callflow.siteconfig._diff import changed_files, diff_hash, read_live, unified_diff
from callflow.siteconfig._expect import Expectation, module_for
from callflow.siteconfig._history import DEFAULT_KEEP, ApplyHistory, ApplyRecord
from callflow.siteconfig._load import LoadedSite
from callflow.siteconfig._render import write_files
from callflow.siteconfig._secrets import mask

log = structlog.get_logger("callflow.siteconfig")
Clock = Callable[[], datetime]

# Reload order: endpoints before the dial plan that dials them, queues, then the AMI itself last.
_ORDER = ["res_pjsip.so", "pbx_config.so", "app_queue.so"]


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


@dataclass(frozen=True)
class ApplyTarget:
    """Where a site is applied: the live Asterisk configuration directory, the AMI to reload and verify
    with, Asterisk's log (``messages.log``: what it refused on reload) and where versions and history are
    kept. Without a log only AMI verifies, which misses an object Asterisk kept in its old form."""

    etc_dir: Path
    state_dir: Path
    ami: AmiEndpoint
    keep: int = DEFAULT_KEEP
    asterisk_log: Path | None = None


@dataclass
class ApplyReport:
    outcome: ApplyOutcome
    changed: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why verification failed (applied config)
    rollback_problems: list[str] = field(default_factory=list)
    version: int | None = None
    diff_sha256: str = ""
    tree_changed: bool = False  # the IVR tree differs from the one last applied (no Asterisk reload)

    @property
    def ok(self) -> bool:
        return self.outcome in {ApplyOutcome.APPLIED, ApplyOutcome.UNCHANGED}


def _who() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _reload_modules(changed: list[str]) -> tuple[list[str], list[str]]:
    modules = {m for name in changed if (m := module_for(name))}
    restart = sorted(name for name in changed if module_for(name) is None)
    ordered = [m for m in _ORDER if m in modules] + sorted(modules - set(_ORDER) - {"manager"})
    if "manager" in modules:
        ordered.append("manager")
    return ordered, restart


async def apply_files(files: Mapping[str, str], target: ApplyTarget, *, site_file: Path, site_text: str,
                      secrets: Mapping[str, str], new_ami: AmiEndpoint | None = None,
                      clock: Clock | None = None, verify_timeout: float = 10.0,
                      site: LoadedSite | None = None) -> ApplyReport:
    """Apply ``files`` (rendered) to ``target``. ``new_ami`` is the AMI login as the new files define it
    (verification logs in with it when manager.conf changed). With ``site`` (the loaded site file), its IVR
    tree is part of the apply: a changed tree is in the diff, the history and the version, and once
    Asterisk took the files the site and its tree are kept as what ``target`` runs
    (:mod:`._applied`)."""
    now = clock or (lambda: datetime.now(UTC))
    history = ApplyHistory(target.state_dir, target.keep)
    with history.locked():
        old = read_live(target.etc_dir, sorted(files))
        changed = changed_files(old, files)
        diff = unified_diff(old, files, secrets)
        old_tree, new_tree = _trees(target.state_dir, site)
        tree_changed = new_tree is not None and old_tree != new_tree
        if tree_changed:
            diff += unified_diff({TREE_NAME: old_tree}, {TREE_NAME: new_tree or ""}, secrets)
        report = ApplyReport(ApplyOutcome.UNCHANGED, changed=changed, diff_sha256=diff_hash(diff),
                             tree_changed=tree_changed)
        if changed:
            report.modules, report.restart_needed = _reload_modules(changed)
            await _apply_and_verify(files, old, target, report, new_ami=new_ami, secrets=secrets,
                                    verify_timeout=verify_timeout)
        elif tree_changed:
            report.outcome = ApplyOutcome.APPLIED  # nothing for Asterisk to reload: the engine reads it
        if tree_changed:
            report.changed = [*report.changed, TREE_NAME]
        if report.outcome is ApplyOutcome.APPLIED:
            extra = {TREE_NAME: new_tree} if new_tree is not None else {}
            report.version = history.save_version({**files, **extra}, site_text)
        if site is not None and report.ok:
            store_applied(target.state_dir, site)
        history.record(ApplyRecord(
            at=now().isoformat(timespec="microseconds"), who=_who(), site_file=str(site_file),
            diff_sha256=report.diff_sha256, outcome=report.outcome.value, changed=report.changed,
            modules=report.modules, version=report.version,
            problems=report.problems + report.rollback_problems))
    log.info("config.apply", outcome=report.outcome.value, changed=report.changed, modules=report.modules,
             diff_sha256=report.diff_sha256, problems=report.problems)
    return report


def _trees(state_dir: Path, site: LoadedSite | None) -> tuple[str | None, str | None]:
    """(tree last applied to ``state_dir``, tree of ``site``); None where there is none."""
    if site is None:
        return None, None
    stored = applied_site_path(state_dir).with_name(TREE_NAME)
    old = stored.read_text(encoding="utf-8") if stored.is_file() else None
    return old, tree_text(site)


async def _apply_and_verify(files: Mapping[str, str], old: Mapping[str, str | None], target: ApplyTarget,
                            report: ApplyReport, *, new_ami: AmiEndpoint | None, secrets: Mapping[str, str],
                            verify_timeout: float) -> None:
    manager_changed = "manager" in report.modules
    after = new_ami if manager_changed and new_ami else target.ami
    log_watch = _Log(target.asterisk_log, secrets)
    try:
        write_files({name: files[name] for name in report.changed}, target.etc_dir)
    except OSError as exc:
        report.problems = [f"cannot write {target.etc_dir}: {exc}"]
    else:
        report.problems = await _reload_and_verify(
            [target.ami], [after], report.modules, Expectation.from_files(files), verify_timeout,
            asterisk_log=log_watch)
    if not report.problems:
        report.outcome = ApplyOutcome.APPLIED
        return
    log.warning("config.apply.verification_failed", problems=report.problems)
    restore = {name: text for name, text in old.items() if name in report.changed and text is not None}
    for name in report.changed:
        if old.get(name) is None:
            (target.etc_dir / name).unlink(missing_ok=True)
    write_files(restore, target.etc_dir)
    old_files = {name: text for name, text in old.items() if text is not None}
    # Whether Asterisk took the new manager.conf or not, one of the two logins works for the reload;
    # after it, the restored manager.conf's login must work.
    report.rollback_problems = await _reload_and_verify(
        [after, target.ami], [target.ami], report.modules, Expectation.from_files(old_files), verify_timeout,
        asterisk_log=log_watch)
    failed = bool(report.rollback_problems)
    report.outcome = ApplyOutcome.ROLLBACK_FAILED if failed else ApplyOutcome.ROLLED_BACK


class _Log:
    """Asterisk's log around one reload and verification, its lines' secrets masked."""

    def __init__(self, path: Path | None, secrets: Mapping[str, str]) -> None:
        self.watch = LogWatch(path) if path is not None else None
        self.secrets = secrets
        self.marked = False

    def mark(self) -> list[str]:
        self.marked = False
        if self.watch is None:
            return []
        try:
            self.watch.mark()
        except OSError as exc:
            return [f"cannot read Asterisk's log {self.watch.path} ({exc.strerror}): what Asterisk refused "
                    f"on reload cannot be seen"]
        self.marked = True
        return []

    async def refused(self) -> list[str]:
        if self.watch is None or not self.marked:  # unmarked: the problem is already reported by mark()
            return []
        try:
            text = await self.watch.read_new()
        except OSError as exc:
            return [f"cannot read Asterisk's log {self.watch.path} ({exc.strerror})"]
        return [mask(r.describe(), self.secrets) for r in refusals(text)]


async def _reload_and_verify(logins: list[AmiEndpoint], verify_logins: list[AmiEndpoint], modules: list[str],
                             expect: Expectation, timeout: float, *, asterisk_log: _Log) -> list[str]:
    """Reload ``modules`` (logged in with the first of ``logins`` that works), then verify over a new
    login (so a changed manager.conf is proven by logging in with what it now defines), then read what
    Asterisk logged meanwhile: an object it refused or kept in its old form fails verification."""
    problems = asterisk_log.mark()
    try:
        async with _connected(logins) as conn:
            for module in modules:
                try:
                    await conn.action("Reload", {"Module": module}, timeout=timeout)
                except AmiError as exc:
                    problems.append(f"Asterisk refused to reload {module}: {exc}")
        async with _connected(verify_logins) as conn:
            problems += await verify(conn, expect, timeout)
    except AmiError as exc:
        problems.append(f"AMI: {exc}")
    return problems + await asterisk_log.refused()


class _connected:
    """``async with`` a short-lived AMI connection (its events are not read; it lives for seconds),
    logged in with the first endpoint that works."""

    def __init__(self, endpoints: list[AmiEndpoint]) -> None:
        self.endpoints = endpoints
        self.events: asyncio.Queue[EventItem] = asyncio.Queue()
        self.conn: AmiConnection | None = None

    async def __aenter__(self) -> AmiConnection:
        last: AmiError | None = None
        for endpoint in self.endpoints:
            conn = AmiConnection(endpoint, self.events)
            try:
                await conn.connect()
            except AmiError as exc:
                last = exc
                continue
            self.conn = conn
            return conn
        assert last is not None  # noqa: S101 - at least one endpoint is always given
        raise last

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()


async def verify(conn: AmiConnection, expect: Expectation, timeout: float) -> list[str]:
    """Compare what Asterisk reports with ``expect``; returns every mismatch (empty: verified)."""
    problems: list[str] = []
    _, items = await conn.list_action("PJSIPShowEndpoints", timeout=timeout)
    present = {i.message.get("ObjectName") for i in items if i.message.get("Event") == "EndpointList"}
    for name, callerid in sorted(expect.endpoints.items()):
        if name not in present:
            problems.append(f"PJSIP endpoint {name} is not loaded (Asterisk rejected its configuration; "
                            f"see the Asterisk log)")
            continue
        if callerid:
            _, detail = await conn.list_action("PJSIPShowEndpoint", {"Endpoint": name}, timeout=timeout)
            shown = next((d.message.get("Callerid") for d in detail
                          if d.message.get("Event") == "EndpointDetail"), None)
            if shown is not None and _norm(shown) != _norm(callerid):
                problems.append(f"PJSIP endpoint {name}: caller id is {shown!r}, expected {callerid!r} "
                                f"(Asterisk did not load the new definition; its log says why)")
    _, items = await conn.list_action("QueueStatus", timeout=timeout)
    params = {i.message.get("Queue"): i.message for i in items if i.message.get("Event") == "QueueParams"}
    for queue, want in sorted(expect.queues.items()):
        got = params.get(queue)
        if got is None:
            problems.append(f"queue {queue} is not loaded")
            continue
        for label, key, value in (("weight", "Weight", want.weight), ("strategy", "Strategy", want.strategy),
                                  ("servicelevel", "ServiceLevel", want.servicelevel)):
            if (got.get(key) or "") != value:
                problems.append(f"queue {queue}: {label} is {got.get(key)!r}, expected {value!r}")
    for context in expect.contexts:
        try:
            await conn.list_action("ShowDialPlan", {"Context": context}, timeout=timeout)
        except AmiError:
            problems.append(f"dial plan context {context} is not loaded")
    for context, extensions in sorted(expect.extensions.items()):
        for exten in extensions:
            try:
                await conn.list_action("ShowDialPlan", {"Context": context, "Extension": exten},
                                       timeout=timeout)
            except AmiError:
                problems.append(f"dial plan: {context} has no extension {exten}")
    return problems


def _norm(callerid: str) -> str:
    return callerid.replace('"', "").replace(" ", "")
