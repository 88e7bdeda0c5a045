#!/usr/bin/env bash
# `make stop`: stop what `make run` started (Airflow components, partner servers, and the
# private PostgreSQL cluster if make run had to create one). Idempotent.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN=var/run
for component in mllp-inlet api-server scheduler dag-processor triggerer \
                 celery-worker-1 celery-worker-2; do
  pidfile="$RUN/$component.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "stopped $component"
  fi
  rm -f "$pidfile" "$RUN/$component.airflow.pid"
done
if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pfi_devkit down --state var/devkit >/dev/null 2>&1 && echo "stopped the partner servers"
fi
