"""The lab's AMI TLS certificate: self-signed, for 127.0.0.1, made by ``lab up`` with the openssl command
(keys live in the lab's instance directory, mode 0600, never in the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from callflow.lab.errors import LabError

TLS_CERT = "ami-cert.pem"
TLS_KEY = "ami-key.pem"
VALID_DAYS = 30


def ensure_certificate(keys_dir: Path) -> Path:
    """A certificate and key in ``keys_dir`` (made if missing or expiring within a day); returns the
    certificate, which is also what a client trusts (self-signed)."""
    cert, key = keys_dir / TLS_CERT, keys_dir / TLS_KEY
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LabError("the lab's AMI TLS listener needs a certificate and the `openssl` command is missing: "
                       "install it (Debian package openssl)")
    if cert.exists() and key.exists() and _valid_for_a_day(openssl, cert):
        return cert
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(VALID_DAYS), "-subj", "/CN=siaga112 lab AMI",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise LabError(f"could not make the lab's AMI TLS certificate in {keys_dir}: "
                       f"{result.stderr.strip() or result.stdout.strip()}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert


def _valid_for_a_day(openssl: str, cert: Path) -> bool:
    result = subprocess.run([openssl, "x509", "-checkend", "86400", "-noout", "-in", str(cert)],
                            capture_output=True, timeout=10, check=False)
    return result.returncode == 0
