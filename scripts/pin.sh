#!/usr/bin/env bash
# Refresh the pins: resolve requirements.in (+ requirements-dev.in) in a scratch venv with the
# newest versions PyPI serves, check them with `pip check`, and freeze the result.
# Review the diff (especially apache-airflow and its providers) before committing.
set -euo pipefail
PYTHON=${1:-python3.11}
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install -q --disable-pip-version-check -r requirements.in
"$scratch/venv/bin/pip" check
{ echo "# Frozen runtime set for Python 3.11, resolved from requirements.in (see README, 'Refreshing the pins')."
  echo "# Regenerate with: make pin"
  "$scratch/venv/bin/pip" freeze --exclude-editable; } > requirements.txt
before=$("$scratch/venv/bin/pip" freeze --exclude-editable | cut -d= -f1 | sort)
"$scratch/venv/bin/pip" install -q --disable-pip-version-check -r requirements-dev.in
"$scratch/venv/bin/pip" check
after=$("$scratch/venv/bin/pip" freeze --exclude-editable)
{ echo "# Test and lint tools, frozen (make pin)."
  echo "-r requirements.txt"
  echo "$after" | grep -v -i -F -x -f <(grep -v '^#' requirements.txt) ; } > requirements-dev.txt
echo "requirements.txt and requirements-dev.txt refreshed; review with git diff."
