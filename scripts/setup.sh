#!/usr/bin/env bash
# All set-up on a fresh machine: Debian packages the project needs, the virtualenv with the project and
# its dev tools, and the lab's Asterisk root (built once with debootstrap and cached).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v asterisk >/dev/null 2>&1 || command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
# the console's end-to-end tests drive the system's headless Chromium (no browser download works here)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# the PostgreSQL store (and the tests' private cluster: initdb/pg_ctl, kept off PATH by Debian)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
# the two-node lab's SIP front (`siaga112 lab up --nodes 2`): Kamailio with its dispatcher module
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${need[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/siaga112 lab provision
