#!/usr/bin/env bash
# Stop the Slurm cluster that ensure-slurm.sh started, and nothing else: its
# jobs first (cancelled, so that their scripts can clean up after themselves,
# e.g. remove the containers they started), then slurmd, slurmctld and munged
# by their pid files under $MAHIRU_STATE_DIR/slurm. Each daemon gets SIGTERM,
# then SIGKILL if it is still there after a bounded wait. The configuration,
# state and key stay, so the next ensure-slurm.sh is quick.
# Idempotent: with nothing of ours running it says so and succeeds.
#
# Environment: MAHIRU_STATE_DIR (default /var/tmp/mahiru);
# MAHIRU_SLURM_STOP_WAIT (default 30) bounds each wait.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SLURM_DIR="$MAHIRU_STATE_DIR/slurm"
export SLURM_CONF="$SLURM_DIR/etc/slurm.conf"
MUNGE_PIDFILE="$SLURM_DIR/munge/munged.pid"
SLURMCTLD_PIDFILE="$SLURM_DIR/slurmctld.pid"
SLURMD_PIDFILE="$SLURM_DIR/slurmd.pid"
WAIT_SECONDS="${MAHIRU_SLURM_STOP_WAIT:-30}"

# The processes of this cluster's jobs: those in its cgroups (slurm_<node> in
# the freezer hierarchy, where proctrack/cgroup puts every job step).
job_pids() {
    local node
    node="$(sed -n 's/^PartitionName=[^ ]* Nodes=\([^ ]*\) .*/\1/p' "$SLURM_CONF" 2>/dev/null)"
    [[ -n "$node" && -d "/sys/fs/cgroup/freezer/slurm_$node" ]] || return 0
    find "/sys/fs/cgroup/freezer/slurm_$node" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs
}

if ! pidfile_alive "$MUNGE_PIDFILE" munged && ! pidfile_alive "$SLURMCTLD_PIDFILE" slurmctld \
    && ! pidfile_alive "$SLURMD_PIDFILE" slurmd && [[ -z "$(job_pids)" ]]; then
    rm -f "$MUNGE_PIDFILE" "$SLURMCTLD_PIDFILE" "$SLURMD_PIDFILE"
    log "no Slurm daemons started by ensure-slurm.sh are running; nothing to stop"
    exit 0
fi
require_root

# Jobs survive their slurmd, so they are cancelled while the cluster can still
# do it: scancel signals each job's script, which may trap it and clean up.
if pidfile_alive "$MUNGE_PIDFILE" munged && pidfile_alive "$SLURMCTLD_PIDFILE" slurmctld; then
    jobs="$(timeout 10 squeue -h -o %i 2>/dev/null | xargs || true)"
    if [[ -n "$jobs" ]]; then
        log "cancelling Slurm jobs $jobs"
        # shellcheck disable=SC2086  # one argument per job id
        timeout 10 scancel $jobs || true
        deadline=$((SECONDS + WAIT_SECONDS))
        while [[ -n "$(timeout 10 squeue -h -o %i 2>/dev/null || true)" ]]; do
            if ((SECONDS >= deadline)); then
                log "Slurm jobs still ending after ${WAIT_SECONDS}s; stopping the daemons anyway"
                break
            fi
            sleep 0.2
        done
    fi
fi

# Is process $1 alive, and still the program named $2? (Zombies count as gone.)
pid_alive() {
    local stat
    [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# SIGTERM, a bounded wait, then SIGKILL. The pid is read once: munged removes
# its pid file as it exits.
stop_daemon() {
    local name="$1" pidfile="$2" pid deadline
    if ! pidfile_alive "$pidfile" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + WAIT_SECONDS))
    while pid_alive "$pid" "$name"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) ignored SIGTERM for ${WAIT_SECONDS}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$pidfile"
}

# slurmd first (it reports to slurmctld), munged last (both authenticate with it).
stop_daemon slurmd "$SLURMD_PIDFILE"
stop_daemon slurmctld "$SLURMCTLD_PIDFILE"
stop_daemon munged "$MUNGE_PIDFILE"

# What a cancel could not end (no controller, or a step that ignored it).
left="$(job_pids)"
if [[ -n "$left" ]]; then
    log "killing job processes left in Slurm's cgroups: $left"
    # shellcheck disable=SC2086  # one argument per pid
    kill -KILL $left 2>/dev/null || true
fi
log "Slurm stopped"
