#!/usr/bin/env bash
# `make run`: PostgreSQL, the local partner servers, Airflow (api-server, scheduler,
# dag-processor, triggerer; LocalExecutor), the demo settings and a few sample messages.
# `PFI_EXECUTOR=celery make run`: the CeleryExecutor instead (as docker-compose.yaml), with two
# Celery workers and the machine's Redis (127.0.0.1:6379, one database per clone) as broker.
# The executor is remembered (var/airflow/executor): a later `make run` keeps it.
# Idempotent: components already running are left alone; killed ones are started again.
# `scripts/run.sh restart`: what a supervisor does after a crash (systemd's Restart=, a container
# runtime) — start again the components that are not running, nothing else: no migration, no
# sample (make chaos restarts so, in seconds instead of make run's minute).
set -euo pipefail
MODE=${1:-run}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=.venv/bin/python
RUN=var/run
LOG=var/log
mkdir -p "$RUN" "$LOG"
# Alive: the pid file's process exists and is not a zombie — a component SIGKILLed a moment ago
# stays a zombie until init reaps it, and must be started again all the same.
alive() {
  [ -f "$RUN/$1.pid" ] || return 1
  local pid; pid=$(cat "$RUN/$1.pid")
  kill -0 "$pid" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}
# A component started again keeps its previous log as <name>.log.1 (what it said before a crash).
fresh_log() { [ -f "$LOG/$1.log" ] && mv -f "$LOG/$1.log" "$LOG/$1.log.1"; echo "$LOG/$1.log"; }

KEPT_EXECUTOR=$(cat var/airflow/executor 2>/dev/null || echo local)
EXECUTOR=${PFI_EXECUTOR:-$KEPT_EXECUTOR}
case "$EXECUTOR" in
  local|celery) ;;
  *) echo "PFI_EXECUTOR=$EXECUTOR: local or celery"; exit 2 ;;
esac
if [ "$EXECUTOR" != "$KEPT_EXECUTOR" ] && { [ "$MODE" = restart ] || alive scheduler; }; then
  echo "Airflow runs with the $KEPT_EXECUTOR executor: make stop first, then PFI_EXECUTOR=$EXECUTOR make run"
  exit 1
fi

echo "1/5 local partner servers (IMAP/SMTP with client certificates, MLLP DPI, DMP endpoint)"
$PY -m pfi_devkit up --state var/devkit >/dev/null

if [ "$MODE" = restart ] && [ -f var/airflow/airflow.env ]; then
  ENV_FILE=var/airflow/airflow.env
  set -a; . "$ENV_FILE"; set +a
else
echo "2/5 databases, settings and the Airflow env file"
ENV_FILE=$($PY -m pfi_devkit.demo prepare --connections var/devkit/connections.json --executor "$EXECUTOR")
set -a; . "$ENV_FILE"; set +a

echo "3/5 migrations (Airflow metadata, PFI ledger)"
.venv/bin/airflow db migrate >"$LOG/db-migrate.log" 2>&1 || { tail -20 "$LOG/db-migrate.log"; exit 1; }
.venv/bin/pfi ledger upgrade >/dev/null
# The pool that throttles DMP calls (dags/deliver_dmp.py); `pools set` is idempotent.
.venv/bin/airflow pools set dmp 2 "DMP web services (ITI-41, ITI-57)" >>"$LOG/db-migrate.log" 2>&1
# The historical backfill's own pool (dags/backfill_dmp_history.py): one lot at a time.
.venv/bin/airflow pools set dmp_backfill 1 "Historical DMP backfill (one lot at a time)" >>"$LOG/db-migrate.log" 2>&1
fi

echo "4/5 Airflow components ($AIRFLOW__CORE__EXECUTOR)"
for component in api-server scheduler dag-processor triggerer; do
  if alive "$component"; then
    echo "    $component already running (pid $(cat "$RUN/$component.pid"))"
  else
    setsid nohup .venv/bin/airflow "$component" >"$(fresh_log "$component")" 2>&1 < /dev/null &
    echo $! >"$RUN/$component.pid"
    echo "    $component started (pid $!)"
  fi
done

# The second inlet: HL7 over MLLP for the DPI, written into its drop directory (pfi.flows.inlet).
if alive mllp-inlet; then
  echo "    mllp-inlet already running (pid $(cat "$RUN/mllp-inlet.pid"))"
else
  setsid nohup .venv/bin/pfi hl7 listen dpi >"$(fresh_log mllp-inlet)" 2>&1 < /dev/null &
  echo $! >"$RUN/mllp-inlet.pid"
  echo "    mllp-inlet started (pid $!)"
fi
MLLP_PORT=$(cat var/airflow/mllp-inlet-port)

URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
# Healthy means OUR api-server answers: another clone's on the same port would answer too, and
# our tasks would then get "Invalid auth token" from it.
ours() { alive api-server && grep -q "Uvicorn running on" "$LOG/api-server.log"; }
for _ in $(seq 1 90); do
  if ours && curl -fsS "$URL/api/v2/monitor/health" >/dev/null 2>&1; then break; fi
  alive api-server || break
  sleep 1
done
{ ours && curl -fsS "$URL/api/v2/monitor/health" >/dev/null 2>&1; } || {
  echo "Airflow did not become healthy on $URL; see $LOG/api-server.log"; tail -20 "$LOG/api-server.log"; exit 1; }
if [ "$EXECUTOR" = celery ]; then
  # Started once the api-server answers: a task a worker took earlier failed on the execution
  # API (connection refused, then read timeouts) and waited for its retry.
  # Two workers on this machine (compose scales airflow-worker instead). Each its own Airflow pid
  # file (`airflow celery worker` refuses to start beside a live one), no log server of its own
  # (both would bind the same port; the task logs are files under AIRFLOW_HOME the api-server reads).
  for n in 1 2; do
    worker=celery-worker-$n
    if alive "$worker"; then
      echo "    $worker already running (pid $(cat "$RUN/$worker.pid"))"
    else
      setsid nohup .venv/bin/airflow celery worker --celery-hostname "pfi-worker-$n@%h" \
        --pid "$ROOT/$RUN/$worker.airflow.pid" --skip-serve-logs \
        >"$(fresh_log "$worker")" 2>&1 < /dev/null &
      echo $! >"$RUN/$worker.pid"
      echo "    $worker started (pid $!, broker $AIRFLOW__CELERY__BROKER_URL)"
    fi
  done
fi

[ "$MODE" = restart ] && exit 0

echo "5/5 sample messages"
$PY -m pfi_devkit.demo samples | sed -e 's|^/|    dropped /|' -e 's/^mail /    mailed /'
# The current month's indicators once the samples went through (report_monthly_stats writes
# each month's on the 1st of the next one): a one-shot in the background, ~3 minutes from now.
MONTH=$(TZ=Europe/Paris date +%Y-%m)
setsid nohup sh -c "sleep 180; .venv/bin/pfi stats month $MONTH" >"$LOG/stats-demo.log" 2>&1 < /dev/null &

cat <<TXT

PFI on Airflow is running.
  UI:     $URL   (login: admin / admin)
  Console PFI: $URL/plugin/pfi-console   (also lecteur, operateur, superviseur: password = login)
  The demo DAGs run unpaused (a production airflow.cfg keeps dags_are_paused_at_creation).
  Drop HL7 files into var/demo/hl7/<dpi|sgl|ris>/in; acknowledgements appear in .../out.
  The DPI may also send over MLLP to 127.0.0.1:$MLLP_PORT.
  Mailboxes, DMP and DPI partners: .venv/bin/python -m pfi_devkit status
  Monthly indicators of $MONTH (CSV, in ~3 minutes): var/demo/data/stats/ (.venv/bin/pfi stats month $MONTH)
  Executor: $AIRFLOW__CORE__EXECUTOR$([ "$EXECUTOR" = celery ] && echo " (workers pfi-worker-1, pfi-worker-2; broker $AIRFLOW__CELERY__BROKER_URL)")
  Logs:   $LOG/    Settings: var/demo/pfi.toml    Env: $ENV_FILE
  Stop:   make stop
TXT
