"""Applying a site file to a running lab: the lab's ports, directories and secrets in place of the site
file's, its configuration directory as the target, its AMI for reloads and verification."""

from __future__ import annotations

import json
import os
from pathlib import Path

from callflow.ami import AmiEndpoint
from callflow.lab._control import AMI_USER, LabStatus, lab_dir, load_secrets
from callflow.lab._render import APPLY_USER, load_lab_site
from callflow.lab.errors import LabError
from callflow.siteconfig import APPLY_KEY, MESSAGES_LOG, ApplyTarget, LoadedSite


def lab_apply_target(st: LabStatus, site_file: Path, keep: int = 10
                     ) -> tuple[LoadedSite, dict[str, str], ApplyTarget]:
    """(site as the lab runs it, resolved secrets, target). Raises :class:`LabError` if the lab is down."""
    if not st.running:
        raise LabError(f"lab {st.instance!r} is not running: start it with "
                       f"`siaga112 lab up --instance {st.instance}`")
    lab_secrets = load_secrets(Path(st.secrets_file))
    loaded, secrets = load_lab_site(site_file, ports=st.ports(), inner=st.instance_dir_in_root,
                                    ami_user=AMI_USER, secrets=lab_secrets, cluster=st.lab_cluster(),
                                    node=st.node)
    target = ApplyTarget(etc_dir=Path(st.config_dir), state_dir=lab_dir(st.instance) / "config",
                         ami=st.apply_endpoint(), keep=keep, asterisk_log=Path(st.log_dir) / MESSAGES_LOG)
    return loaded, secrets, target


def lab_ami_after(st: LabStatus, secrets: dict[str, str]) -> AmiEndpoint:
    """``config apply``'s login as the files being applied define it (its own user, not the engine's)."""
    return AmiEndpoint(st.ami["host"], int(st.ami["port"]), APPLY_USER, secrets[APPLY_KEY])


def keep_lab_secrets(st: LabStatus, secrets: dict[str, str]) -> list[str]:
    """After an apply: the lab keeps the secrets of the site it runs (a new operator's, read from its
    ``secret_env`` at apply time), so a later ``lab up`` renders the same site without that environment.
    The lab's secrets file stays owner-only. Returns the names added."""
    path = Path(st.secrets_file)
    known = load_secrets(path)
    added = sorted(key for key in secrets if key not in known)
    if added:
        known.update({key: secrets[key] for key in added})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(known, fh)
    return added
