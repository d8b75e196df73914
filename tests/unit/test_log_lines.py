"""JSON log lines stay whole when two processes share one stdout: the engine and its IVR child do
(`siaga112 serve`), and with PYTHONUNBUFFERED set a line written in two pieces (text, then newline) could
be cut in two by the other process's line, which then no log reader could parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WRITER = """
import sys
from callflow.logs import configure_logging
import structlog
configure_logging("json", "info", stream=sys.stdout)
log = structlog.get_logger("t")
for i in range(3000):
    log.info("line", writer=sys.argv[1], i=i, pad="x" * 120)
"""


def test_two_processes_logging_to_one_pipe_never_cut_each_others_lines() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    read, write = os.pipe()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name], stdout=write, env=env)
               for name in ("engine", "ivr")]
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        lines = pipe.read().splitlines()
    for w in writers:
        assert w.wait(timeout=60) == 0
    records = [json.loads(line) for line in lines]  # raises on a cut or glued line
    assert sorted((r["writer"], r["i"]) for r in records) == sorted(
        (name, i) for name in ("engine", "ivr") for i in range(3000))
