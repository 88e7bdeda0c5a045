#!/usr/bin/env bash
# Install what is missing on a fresh Debian 12 machine: Debian packages (Dovecot for the local
# MSSanté stand-in, Chromium for the console's browser test, PostgreSQL when no server answers
# on 127.0.0.1:5432, the Python venv module),
# then the venv with the pinned Python packages and the project itself (editable, so that
# `include/` is on the venv's path and the `pfi` command exists).
# Idempotent: every step checks before acting.
set -euo pipefail
PYTHON=${1:-python3.11}
VENV=${2:-.venv}
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3 python3-venv)
"$PYTHON" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
# the operator console's browser test (tests/dags/test_console_browser.py, Playwright drives it)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if ! (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432) \
   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's dovecot package may start a system instance; ours runs from its own config.
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "Installing the pinned Python packages (requirements-dev.txt)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
  | grep -v 'is ignored: it is neither a file nor a directory' || true
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 \
  | grep -v 'is ignored: it is neither a file nor a directory' || true
"$VENV/bin/python" -m pip check >/dev/null
"$VENV/bin/python" -c 'import airflow, pfi'
# The devkit (demo and tests) is not installed: it is imported from the clone's root.
"$VENV/bin/python" -c 'import pfi_devkit'
echo "Environment ready: $VENV"
