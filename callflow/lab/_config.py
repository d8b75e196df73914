"""Applying a site file to a running lab: the lab's ports, directories and secrets in place of the site
file's, its configuration directory as the target, its AMI for reloads and verification."""

from __future__ import annotations

from pathlib import Path

from callflow.ami import AmiEndpoint
from callflow.lab._control import AMI_USER, LabStatus, lab_dir, load_secrets
from callflow.lab._render import load_lab_site
from callflow.lab.errors import LabError
from callflow.siteconfig import MESSAGES_LOG, ApplyTarget, LoadedSite


def lab_apply_target(st: LabStatus, site_file: Path, keep: int = 10
                     ) -> tuple[LoadedSite, dict[str, str], ApplyTarget]:
    """(site as the lab runs it, resolved secrets, target). Raises :class:`LabError` if the lab is down."""
    if not st.running:
        raise LabError(f"lab {st.instance!r} is not running: start it with "
                       f"`siaga112 lab up --instance {st.instance}`")
    lab_secrets = load_secrets(Path(st.secrets_file))
    loaded, secrets = load_lab_site(site_file, ports=st.ports(), inner=st.instance_dir_in_root,
                                    ami_user=AMI_USER, secrets=lab_secrets)
    target = ApplyTarget(etc_dir=Path(st.config_dir), state_dir=lab_dir(st.instance) / "config",
                         ami=st.ami_endpoint(), keep=keep, asterisk_log=Path(st.log_dir) / MESSAGES_LOG)
    return loaded, secrets, target


def lab_ami_after(st: LabStatus, secrets: dict[str, str]) -> AmiEndpoint:
    return AmiEndpoint(st.ami["host"], int(st.ami["port"]), AMI_USER, secrets["ami"])
