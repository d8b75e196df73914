"""The console component's start-up checks: its address and a port already taken."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from callflow.console import ConsoleComponent, ConsoleError, HttpAddress


def test_address_parsing() -> None:
    assert HttpAddress.parse("127.0.0.1:8112") == HttpAddress("127.0.0.1", 8112)
    assert HttpAddress.parse("[::1]:9000") == HttpAddress("::1", 9000)
    assert HttpAddress.parse("127.0.0.1:8112").loopback
    assert not HttpAddress.parse("0.0.0.0:8112").loopback
    for bad in ("8112", "localhost", "127.0.0.1:http", ":8112", "127.0.0.1:70000"):
        with pytest.raises(ConsoleError, match="HOST:PORT"):
            HttpAddress.parse(bad)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        component = ConsoleComponent(HttpAddress("127.0.0.1", port), tmp_path / "db")
        with pytest.raises(ConsoleError, match=f"cannot listen on 127.0.0.1:{port}.*--http HOST:PORT"):
            component.bind()
        # and `serve` refuses to start, saying so, before it attaches to any Asterisk
        done = subprocess.run([sys.executable, "-m", "callflow.cli", "serve", "--http", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"SIAGA112_AMI__SECRET": "unused", "PATH": "/usr/bin:/bin",
                                   "SIAGA112_DATABASE": str(tmp_path / "db")})
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
