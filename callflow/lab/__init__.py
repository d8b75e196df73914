"""The lab: a real Asterisk 22 on loopback, from an installed binary or a cached Debian sid root."""

from callflow.lab._cluster import (
    ClusterStatus,
    check_front_config,
    cluster_status,
    down_cluster,
    front_files,
    front_view,
    is_cluster,
    lab_database,
    restart_front,
    up_cluster,
)
from callflow.lab._config import keep_lab_secrets, lab_ami_after, lab_apply_target
from callflow.lab._control import (
    LabStatus,
    down,
    free_ports,
    lab_dir,
    lab_site_file,
    load_secrets,
    status,
    up,
)
from callflow.lab._engines import CONSOLE_PORTS
from callflow.lab._postgres import PostgresUnavailable, PrivatePostgres
from callflow.lab._render import LabCluster, LabPorts, lab_site, load_lab_site
from callflow.lab._root import cache_dir, find_runtime
from callflow.lab._whole import STORES, SetStatus, down_set, has_set, set_status, up_set
from callflow.lab.errors import LabError
from callflow.siteconfig import pbx_config_dir

__all__ = [
    "CONSOLE_PORTS",
    "STORES",
    "ClusterStatus",
    "LabCluster",
    "LabError",
    "LabPorts",
    "LabStatus",
    "PostgresUnavailable",
    "PrivatePostgres",
    "SetStatus",
    "cache_dir",
    "check_front_config",
    "cluster_status",
    "down",
    "down_cluster",
    "down_set",
    "find_runtime",
    "free_ports",
    "front_files",
    "front_view",
    "has_set",
    "is_cluster",
    "keep_lab_secrets",
    "lab_ami_after",
    "lab_apply_target",
    "lab_database",
    "lab_dir",
    "lab_site",
    "lab_site_file",
    "load_lab_site",
    "load_secrets",
    "pbx_config_dir",
    "restart_front",
    "set_status",
    "status",
    "up",
    "up_cluster",
    "up_set",
]
