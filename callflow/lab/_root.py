"""Where the lab's Asterisk comes from: an installed binary, or a cached Debian sid root (debootstrap)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from callflow.lab.errors import LabError

ROOT_PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm")
_MARKER = ".siaga112-root-complete"
_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/asterisk/modules", "/usr/lib/aarch64-linux-gnu/asterisk/modules",
                "/usr/lib/asterisk/modules", "/usr/lib64/asterisk/modules")

NOT_ROOT_HELP = (
    "siaga112 lab needs Asterisk 22. No `asterisk` binary is installed and this user is not root, so "
    "the lab cannot build its own Debian sid root with debootstrap. Either install Asterisk 22 (for "
    "example the Debian packages asterisk, asterisk-modules and asterisk-core-sounds-en-gsm from Debian "
    "sid or trixie-backports), or run `siaga112 lab up` as root with the Debian package `debootstrap` "
    "installed (`apt-get install debootstrap`): the lab then builds and caches a sid root under "
    "~/.cache/siaga112 (about 40 s and 500 MB, once)."
)


def cache_dir() -> Path:
    explicit = os.environ.get("SIAGA112_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "siaga112"


@dataclass(frozen=True)
class AsteriskRuntime:
    """How to run Asterisk: ``root`` is ``/`` for an installed binary, else the chroot directory."""

    mode: str  # "host" | "chroot"
    root: Path
    binary: str  # path inside the root
    module_dir: str  # path inside the root
    version: str

    def command(self, *args: str) -> list[str]:
        if self.mode == "chroot":
            return ["chroot", str(self.root), self.binary, *args]
        return [self.binary, *args]

    def host_path(self, inner: str) -> Path:
        """Host path of a path inside the root."""
        if self.mode == "chroot":
            return self.root / inner.lstrip("/")
        return Path(inner)


def _module_dir(root: Path) -> str:
    for candidate in _MODULE_DIRS:
        if (root / candidate.lstrip("/")).is_dir():
            return candidate
    raise LabError(f"Asterisk modules not found under {root} (looked in {', '.join(_MODULE_DIRS)}); "
                   "install the asterisk-modules package")


def find_runtime(*, provision: bool = True) -> AsteriskRuntime:
    """An installed ``asterisk`` wins; else the cached sid root, built now if missing (root only)."""
    forced_root = os.environ.get("SIAGA112_ASTERISK_ROOT")
    installed = shutil.which("asterisk")
    if installed and not forced_root:
        version = _version([installed, "-V"])
        return AsteriskRuntime("host", Path("/"), installed, _module_dir(Path("/")), version)
    root = Path(forced_root) if forced_root else cache_dir() / "sid-root"
    if not (root / _MARKER).exists():
        if not provision:
            raise LabError(f"no Asterisk root at {root}; run `siaga112 lab up` (as root) to build it")
        build_root(root)
    version = (root / _MARKER).read_text().strip()
    return AsteriskRuntime("chroot", root, "/usr/sbin/asterisk", _module_dir(root), version)


def build_root(root: Path) -> None:
    """debootstrap a Debian sid root with Asterisk into ``root``, atomically (built aside, then renamed)."""
    if os.geteuid() != 0:
        raise LabError(NOT_ROOT_HELP)
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: run `apt-get install debootstrap` (or `make setup`), "
                       "then `siaga112 lab up` again")
    root.parent.mkdir(parents=True, exist_ok=True)
    building = root.with_name(root.name + ".building")
    log_path = root.with_name(root.name + ".debootstrap.log")
    if building.exists():
        shutil.rmtree(building)
    print(f"siaga112 lab: building the Asterisk root with debootstrap into {root} (about 40 s, once; "  # noqa: T201 - progress of a 40 s step, for the user
          f"log: {log_path})", file=sys.stderr, flush=True)
    # No mirror argument: debootstrap's default Debian mirror is the one these machines reach.
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(ROOT_PACKAGES)}", "sid", str(building)]
    with log_path.open("w") as log_file:
        result = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-8:])
        raise LabError(f"debootstrap failed (exit {result.returncode}); nothing was started. Last lines of "
                       f"its log {log_path}:\n{tail}")
    version = _version(["chroot", str(building), "/usr/sbin/asterisk", "-V"])
    (building / _MARKER).write_text(version + "\n")
    if root.exists():
        shutil.rmtree(root)
    building.rename(root)


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"cannot run {' '.join(cmd)}: {exc}") from exc
    return out.stdout.strip()
