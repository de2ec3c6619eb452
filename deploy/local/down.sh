#!/usr/bin/env bash
# ./loraflow down: stops what ./loraflow up started (read from run.env): serving, the merger, the trainer,
# then the broker, each with SIGTERM and, after 20 s, SIGKILL. A foreground up is asked to do it itself.
set -euo pipefail
# shellcheck source=deploy/local/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: ./loraflow down    (stops what ./loraflow up started; LORAFLOW_HOME as for up)"; exit 0 ;;
  *) echo "loraflow down: unknown argument '$1'; it takes none (./loraflow down --help)" >&2; exit 2 ;;
esac

running="$(running_from_run_env)"
if [ -z "$running" ]; then
  rm -f "$RUN_ENV"
  echo "loraflow: nothing is running (no live process in $RUN_ENV)" >&2
  exit 0
fi

up_pid="$(sed -n 's/^up://p' <<< "$running")"
if [ -n "$up_pid" ]; then
  # The foreground up stops the services in order and removes run.env; wait for it, within every grace period.
  echo "loraflow: asking ./loraflow up (pid $up_pid) to stop everything ..." >&2
  kill -TERM "$up_pid" 2>/dev/null || true
  waited=0
  while is_running "$up_pid" "$(marker_of up)" && [ "$waited" -lt $((STOP_GRACE_SECONDS * 10 * (${#SERVICES[@]} + 1))) ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
fi
# Whatever still runs (all of it after a detached up) is stopped here.
stop_from_run_env
for entry in $running; do
  name="${entry%%:*}"
  pid="${entry#*:}"
  if is_running "$pid" "$(marker_of "$name")"; then
    echo "loraflow down: $name (pid $pid) is still running" >&2
    exit 1
  fi
done
echo "loraflow is down" >&2
