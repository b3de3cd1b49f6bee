#!/usr/bin/env bash
# Stop the dockerd that ensure-engine.sh started, and nothing else: an engine
# we found already running has no pid file of ours and is left alone.
# Idempotent: with nothing of ours running it says so and succeeds.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PIDFILE="$MAHIRU_STATE_DIR/dockerd.pid"
# dockerd stops its containers on SIGTERM (10 s grace each, in parallel), so
# allow a little more than that before forcing it.
WAIT_SECONDS="${MAHIRU_ENGINE_STOP_WAIT:-30}"

if ! pidfile_alive "$PIDFILE" dockerd; then
    rm -f "$PIDFILE"
    log "no dockerd started by ensure-engine.sh is running; nothing to stop"
    exit 0
fi

pid="$(cat "$PIDFILE")"
log "stopping dockerd (pid $pid)"
kill -TERM "$pid"
deadline=$((SECONDS + WAIT_SECONDS))
while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
        log "dockerd (pid $pid) ignored SIGTERM for ${WAIT_SECONDS}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
rm -f "$PIDFILE"
log "dockerd stopped"
