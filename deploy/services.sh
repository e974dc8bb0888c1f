#!/usr/bin/env bash
# The production-mode services on THIS machine, loopback only (CI and local trials; deploy/README.md says
# what changes for real hosts):
#   Postgres (an unprivileged cluster in a temp dir: Dagster's instance + MLflow's backend store)
#   moto's S3 server (the bucket: partition store + MLflow artifacts)
#   MLflow tracking server (backend Postgres, --serve-artifacts to s3://)
#
#   deploy/services.sh start          start the three, create the databases and the bucket
#   deploy/services.sh stop           stop them and delete their data (throwaway: moto's bucket is in
#                                     memory); always safe, what is not running is skipped
#   deploy/services.sh status         which are up
#   eval "$(deploy/services.sh env)"  the production-mode environment for market-master / the API / tests
#   deploy/services.sh start-dagster  also a gRPC code server, the daemon and the webserver (optional)
#   deploy/services.sh start-mlflow   (re)start the MLflow server alone
#
# Settings (env): MM_SERVICES_DIR (default /tmp/market-master-services), MM_PG_PORT (25432),
# MM_S3_PORT (25433), MM_MLFLOW_PORT (25434), MM_BUCKET (market-master).
# The ports sit BELOW the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 here): a
# port inside it is free while its server is down (the fault test kills the MLflow server), and the kernel
# hands it out as the source port of any outgoing connection, which then holds it (also for 60 s in
# TIME_WAIT) and the restarted server fails to bind with "address already in use" (seen in CI on 55434).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${MM_VENV_BIN:-$REPO/.venv/bin}"
DIR="${MM_SERVICES_DIR:-/tmp/market-master-services}"
PG_PORT="${MM_PG_PORT:-25432}"
S3_PORT="${MM_S3_PORT:-25433}"
MLFLOW_PORT="${MM_MLFLOW_PORT:-25434}"
BUCKET="${MM_BUCKET:-market-master}"
HOST=127.0.0.1
PG_USER=market_master

env_lines() {
  cat <<EOF
export MARKET_MASTER_MODE=production
export MARKET_MASTER_STORE=s3://$BUCKET/store
export MARKET_MASTER_HOME=$DIR/scratch
export MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT
export DAGSTER_HOME=$DIR/dagster_home
export DAGSTER_PG_HOST=$HOST DAGSTER_PG_PORT=$PG_PORT DAGSTER_PG_USER=$PG_USER DAGSTER_PG_PASSWORD= DAGSTER_PG_DB=dagster
export AWS_ENDPOINT_URL=http://$HOST:$S3_PORT MLFLOW_S3_ENDPOINT_URL=http://$HOST:$S3_PORT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export DAGSTER_EVENT_BATCH_SIZE=100  # Postgres: 100 events per INSERT (range runs 4x faster, bench_backfill.py)
EOF
}

pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "PostgreSQL server binaries not found: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "$d"
}

# Postgres refuses to run as root: as root, the cluster belongs to the `postgres` user (Debian package).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

port_free() {  # port seconds: wait until the port can be bound on $HOST, else say who holds it
  local i
  for i in $(seq 1 "$2"); do
    if "$BIN/python" -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))" \
      "$HOST" "$1" 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "port $HOST:$1 still taken after $2 s:" >&2
  ss -tanp "( sport = :$1 )" >&2 || true
  return 1
}

wait_http() {  # url seconds [log file to show on timeout] [name: fail as soon as its process group is gone]
  local i
  for i in $(seq 1 "$2"); do
    if [ -n "${4:-}" ] && ! kill -0 -- "-$(cat "$DIR/$4.pid")" 2>/dev/null; then
      echo "$4 exited before answering $1" >&2
      [ -n "${3:-}" ] && [ -f "$3" ] && { echo "--- last lines of $3:" >&2; tail -n 40 "$3" >&2; }
      return 1
    fi
    if "$BIN/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" \
      >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "timed out after $2 s waiting for $1" >&2
  [ -n "${3:-}" ] && [ -f "$3" ] && { echo "--- last lines of $3:" >&2; tail -n 40 "$3" >&2; }
  return 1
}

start_bg() {  # name command...: background in its own process group (pid = group id), pid + log file
  local name="$1"; shift
  setsid nohup "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

start_postgres() {
  local pgbin data="$DIR/pg"
  pgbin="$(pg_bin)"
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    as_pg "$pgbin/initdb" -D "$data" -U "$PG_USER" --auth=trust -E UTF8 >"$DIR/initdb.log"
  fi
  as_pg "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=$HOST -k $data" start >/dev/null
  local db
  for db in dagster mlflow; do
    as_pg "$pgbin/psql" -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 ||
      as_pg "$pgbin/createdb" -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$db"
  done
}

start_s3() {
  start_bg moto "$BIN/moto_server" -H "$HOST" -p "$S3_PORT"
  wait_http "http://$HOST:$S3_PORT/" 60
  eval "$(env_lines)"
  "$BIN/python" - "$BUCKET" <<'PY'
import sys

import s3fs

fs = s3fs.S3FileSystem()
if not fs.exists(sys.argv[1]):
    fs.mkdir(sys.argv[1])
PY
}

start_mlflow() {
  eval "$(env_lines)"
  port_free "$MLFLOW_PORT" 60
  # No job runner: it serves GenAI scorer jobs this project never submits, and it adds a tree of huey
  # consumers (with an on-disk task store to recover after a kill -9) to every start and restart.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false start_bg mlflow "$BIN/mlflow" server \
    --backend-store-uri "postgresql+psycopg2://$PG_USER@$HOST:$PG_PORT/mlflow" \
    --serve-artifacts --artifacts-destination "s3://$BUCKET/mlflow-artifacts" \
    --host "$HOST" --port "$MLFLOW_PORT" --workers 1
  wait_http "http://$HOST:$MLFLOW_PORT/health" 180 "$DIR/mlflow.log" mlflow
}

prepare_dagster_home() {
  mkdir -p "$DIR/dagster_home" "$DIR/scratch"
  cp "$REPO/deploy/dagster.yaml" "$DIR/dagster_home/dagster.yaml"
}

start() {
  local t0=$SECONDS
  mkdir -p "$DIR"
  start_postgres; echo "postgres   up on $HOST:$PG_PORT ($((SECONDS - t0)) s)"
  start_s3;       echo "s3 (moto)  up on $HOST:$S3_PORT, bucket $BUCKET ($((SECONDS - t0)) s)"
  start_mlflow;   echo "mlflow     up on http://$HOST:$MLFLOW_PORT ($((SECONDS - t0)) s)"
  prepare_dagster_home
  echo "services up in $((SECONDS - t0)) s; use them with: eval \"\$(deploy/services.sh env)\""
}

start_dagster() {
  eval "$(env_lines)"
  prepare_dagster_home
  start_bg grpc "$BIN/dagster" api grpc -m market_master.definitions -h "$HOST" -p 4266
  sleep 5
  start_bg daemon "$BIN/dagster-daemon" run -w "$REPO/deploy/workspace.yaml"
  start_bg webserver "$BIN/dagster-webserver" -w "$REPO/deploy/workspace.yaml" -h "$HOST" -p 3000
  echo "dagster: code server :4266, daemon, webserver http://$HOST:3000 (logs in $DIR)"
}

stop_pid() {
  local name="$1" pid
  [ -f "$DIR/$name.pid" ] || return 0
  pid="$(cat "$DIR/$name.pid")"
  if kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; then
    # its process group (started by setsid: `mlflow server` runs uvicorn as a child), else the pid
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$DIR/$name.pid"
}

stop() {
  local name
  for name in webserver daemon grpc mlflow moto; do stop_pid "$name"; done
  if [ -f "$DIR/pg/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null && echo "stopped postgres"
  fi
  # throwaway services: moto keeps the bucket in memory, so the databases that point into it go too
  rm -rf "$DIR/pg" "$DIR/dagster_home" "$DIR/scratch"
}

status() {
  local name
  for name in moto mlflow grpc daemon webserver; do
    if [ -f "$DIR/$name.pid" ] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
      echo "$name: up (pid $(cat "$DIR/$name.pid"))"
    else
      echo "$name: down"
    fi
  done
  if [ -f "$DIR/pg/postmaster.pid" ]; then echo "postgres: up"; else echo "postgres: down"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_lines ;;
  start-dagster) start_dagster ;;
  start-mlflow) start_mlflow ;;  # (re)start the MLflow server alone (the fault test restarts it)
  *) echo "usage: $0 start|stop|status|env|start-dagster|start-mlflow" >&2; exit 2 ;;
esac
