"""The running engine learns the site an admin applies, without a restart.

``config apply`` replaces the applied site file atomically (:mod:`callflow.siteconfig._applied`); this
engine component notices (a stat of the file each second: cheap, no inotify dependency) and hands the new
site to each listener (the operator manager learns new operators and wrap-up times; recording and
callback policies are replaced). A site that fails to load is logged with its file:line problems and
ignored: the engine keeps running the site it has.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from callflow.ami import EventItem
from callflow.siteconfig import LoadedSite, Site, SiteConfigError, load_site, tree_path

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("callflow.site")

SiteListener = Callable[[LoadedSite], None]


def file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class SiteSource:
    """Where the site is read from: the first of ``candidates`` that exists (the site last applied, then
    the shipped one; or just the file named by --site / SIAGA112_SITE_FILE). An apply that creates the
    applied site is noticed like one that replaces it."""

    def __init__(self, candidates: Sequence[Path]) -> None:
        self.candidates = list(candidates)
        self._tree_of: tuple[tuple[Path, tuple[int, int, int] | None], Path | None] | None = None

    @property
    def fixed(self) -> Path | None:
        """The one file named (--site, SIAGA112_SITE_FILE, the settings), None when the rule chooses."""
        return self.candidates[0] if len(self.candidates) == 1 else None

    def path(self) -> Path:
        return next((c for c in self.candidates if c.is_file()), self.candidates[-1])

    def signature(self) -> tuple[Path, tuple[int, int, int] | None]:
        path = self.path()
        return path, file_signature(path)

    def tree(self) -> tuple[Path | None, tuple[int, int, int] | None]:
        """The IVR tree the current site names and its signature (None, None: no usable site or IVR). The
        site is parsed again only when its file changed."""
        seen = self.signature()
        if self._tree_of is None or self._tree_of[0] != seen:
            try:
                path = tree_path(load_site(seen[0]))
            except SiteConfigError:
                path = None
            self._tree_of = (seen, path)
        path = self._tree_of[1]
        return (path, file_signature(path)) if path is not None else (None, None)


class SiteWatcher:
    """Engine component: reload the site when it changes and tell ``listeners``."""

    name = "site"

    def __init__(self, source: SiteSource, listeners: Sequence[SiteListener], *,
                 interval_s: float = 1.0) -> None:
        self.source = source
        self.listeners = list(listeners)
        self.interval_s = interval_s
        self._seen = source.signature()
        self.reloads = 0  # sites handed to the listeners since start (tests, status)

    async def handle(self, item: EventItem) -> None:
        return None

    async def run(self, engine: Engine) -> None:
        del engine
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()

    def check(self) -> bool:
        """Reload now if the site changed; True when the listeners got a new site."""
        seen = self.source.signature()
        if seen[1] is None or seen == self._seen:
            return False
        self._seen = seen
        try:
            loaded = load_site(seen[0])
        except SiteConfigError as exc:
            log.error(  # noqa: TRY400 - the problems are file:line; no traceback
                "site.reload_refused", site_file=str(seen[0]), problems=[str(p) for p in exc.problems],
                action="the engine keeps the site it runs; fix the file and apply it again")
            return False
        for listener in self.listeners:
            listener(loaded)
        self.reloads += 1
        log.info("site.reloaded", site_file=str(seen[0]), operators=[op.name for op in loaded.site.operators])
        return True


class SiteCategories:
    """The report categories the running site lists (the console's incident form offers these), kept
    current by :class:`SiteWatcher`. Called: the category ids, None when no site is known (all)."""

    def __init__(self, site: Site | None) -> None:
        self.listed: frozenset[str] | None = None
        if site is not None:
            self.learn(site)

    def __call__(self) -> frozenset[str] | None:
        return self.listed

    def learn(self, site: Site) -> None:
        cats = site.categories
        self.listed = frozenset((*cats.emergency, *cats.nonemergency))
