#!/usr/bin/env bash
# Make sure a Docker-API container engine answers, starting Debian's dockerd if
# none does. Idempotent: an engine that already answers (ours or anyone's,
# via DOCKER_HOST or /var/run/docker.sock) is left alone. The dockerd started
# here is recorded in a pid file so that stop-engine.sh stops only that one.
#
# Environment: MAHIRU_STATE_DIR (default /var/tmp/mahiru) holds dockerd.log
# and dockerd.pid; MAHIRU_ENGINE_WAIT (default 30) bounds the start-up wait.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SOCKET=/var/run/docker.sock
PIDFILE="$MAHIRU_STATE_DIR/dockerd.pid"
LOGFILE="$MAHIRU_STATE_DIR/dockerd.log"
WAIT_SECONDS="${MAHIRU_ENGINE_WAIT:-30}"

engine_answers() {
    # `timeout` guards against a half-dead daemon that accepts but never replies.
    command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1
}

if engine_answers; then
    log "container engine already answers at ${DOCKER_HOST:-unix://$SOCKET}"
    exit 0
fi

# An engine chosen explicitly elsewhere (e.g. Podman's socket) is the caller's
# to run; a dockerd on the default socket would not be the one they asked for.
if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != "unix://$SOCKET" ]]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'; start that engine, or unset DOCKER_HOST to let this script start dockerd on $SOCKET"
fi

require_root
mkdir -p "$MAHIRU_STATE_DIR"
# Concurrent runs (parallel make jobs, CI next to a developer) would each
# install and start a dockerd; the losers wait here, then find it answering.
exec 9>"$MAHIRU_STATE_DIR/ensure-engine.lock"
flock -w 120 9 || die "another ensure-engine.sh has held $MAHIRU_STATE_DIR/ensure-engine.lock for 2 minutes"
if engine_answers; then
    log "container engine now answers at ${DOCKER_HOST:-unix://$SOCKET}"
    exit 0
fi

# docker.io brings dockerd, containerd, runc and a docker CLI (the CLI already
# in /usr/local/bin, if any, comes first in PATH and negotiates the API down).
if ! command -v dockerd >/dev/null; then
    apt_install docker.io
fi
command -v dockerd >/dev/null || die "dockerd still missing after installing docker.io"
command -v docker >/dev/null || die "no docker CLI found in PATH"

if pidfile_alive "$PIDFILE" dockerd; then
    # Ours, still starting up (a concurrent run) or wedged: wait for it below.
    log "dockerd (pid $(cat "$PIDFILE")) already started by us; waiting for it to answer"
else
    rm -f "$PIDFILE"
    # Zombies (a killed dockerd not yet reaped) do not count as running.
    others="$(ps -eo pid=,stat=,comm= | awk '$3 == "dockerd" && $2 !~ /^Z/ { print $1 }' | xargs)"
    if [[ -n "$others" ]]; then
        die "a dockerd we did not start is running (pid $others) but 'docker info' fails; fix or stop it first"
    fi
    # No extra flags are needed on this machine: iptables (nft backend), the
    # docker0 bridge and the overlay2 storage driver all work as root here.
    # setsid detaches dockerd from our process group so a Ctrl-C in `make`
    # or the end of a CI step does not take the shared engine down with it.
    # 9>&- keeps our lock from being inherited, and so held, by the daemon.
    log "starting dockerd on unix://$SOCKET (log: $LOGFILE)"
    setsid dockerd --host "unix://$SOCKET" </dev/null >>"$LOGFILE" 2>&1 9>&- &
    echo "$!" >"$PIDFILE"
fi

start="$(now)"
deadline=$((SECONDS + WAIT_SECONDS))
until DOCKER_HOST="unix://$SOCKET" engine_answers; do
    if ! pidfile_alive "$PIDFILE" dockerd; then
        tail -n 20 "$LOGFILE" >&2 || true
        rm -f "$PIDFILE"
        die "dockerd exited during start-up; its log is above and in $LOGFILE"
    fi
    if ((SECONDS >= deadline)); then
        tail -n 20 "$LOGFILE" >&2 || true
        die "dockerd (pid $(cat "$PIDFILE")) did not answer within ${WAIT_SECONDS}s; see $LOGFILE"
    fi
    sleep 0.2
done
log_took "dockerd start-up" "$start"
log "container engine ready: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"
