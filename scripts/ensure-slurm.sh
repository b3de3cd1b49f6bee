#!/usr/bin/env bash
# Make sure a one-node Slurm cluster for the tests runs on this machine, and
# print the path of its slurm.conf as the only line on stdout:
#
#   export SLURM_CONF="$(scripts/ensure-slurm.sh)"
#
# The cluster is private to Mahiru, like ensure-postgres.sh's database: its
# configuration, state, spool, logs, munge key and munge socket live under
# $MAHIRU_STATE_DIR/slurm, its daemons listen on ports of their own, and
# /etc/slurm, /etc/munge and any munged or Slurm the machine already runs are
# left alone. The node is this host, with the CPUs and memory `slurmd -C`
# finds. munged (as user munge), slurmctld and slurmd fork into the background
# and write pid files; scripts/stop-slurm.sh stops them by those.
# Idempotent: Debian's slurm-wlm and munge are installed only if missing, the
# key is made only if missing, a running daemon is kept; a second run only
# checks that the node answers.
#
# Environment: MAHIRU_STATE_DIR (default /var/tmp/mahiru); MAHIRU_SLURM_PORT
# (default 16817: slurmctld's port, slurmd takes the next one);
# MAHIRU_SLURM_WAIT (default 30) bounds the wait for the node.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${MAHIRU_SLURM_PORT:-16817}"
WAIT_SECONDS="${MAHIRU_SLURM_WAIT:-30}"
SLURM_DIR="$MAHIRU_STATE_DIR/slurm"
CONF="$SLURM_DIR/etc/slurm.conf"
MUNGE_DIR="$SLURM_DIR/munge"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
MUNGE_PIDFILE="$MUNGE_DIR/munged.pid"
SLURMCTLD_PIDFILE="$SLURM_DIR/slurmctld.pid"
SLURMD_PIDFILE="$SLURM_DIR/slurmd.pid"
LOG_DIR="$SLURM_DIR/log"

[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT < 65535)) \
    || die "MAHIRU_SLURM_PORT must be a port number below 65535, got '$PORT'"
require_root
mkdir -p "$SLURM_DIR"
# Concurrent runs (pytest-xdist workers, CI next to a developer) would race on
# the key, the configuration and the start of each daemon.
exec 9>"$SLURM_DIR/ensure-slurm.lock"
flock -w 120 9 || die "another ensure-slurm.sh has held $SLURM_DIR/ensure-slurm.lock for 2 minutes"

# slurm-wlm brings slurmctld, slurmd and the client commands.
apt_install slurm-wlm munge
export SLURM_CONF="$CONF"

install -d -m 0755 "$SLURM_DIR/etc" "$LOG_DIR" "$SLURM_DIR/spool"
install -d -m 0700 "$SLURM_DIR/state"
# munged refuses a key others can read, and a socket folder others cannot enter.
install -d -m 0755 -o munge -g munge "$MUNGE_DIR"
if [[ ! -s "$MUNGE_KEY" ]]; then
    log "creating a munge key in $MUNGE_KEY"
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_KEY" >&2
fi

# "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105": what slurmd itself will
# report, so the node registers without a mismatch.
node_line="$(slurmd -C | head -n 1)"
[[ "$node_line" =~ ^NodeName=([^[:space:]]+)[[:space:]] ]] \
    || die "unexpected output from 'slurmd -C': $node_line"
NODE="${BASH_REMATCH[1]}"

# Cores and memory are consumable (without DefMemPerCPU a job would hold the whole node's
# memory), jobs run in cgroups (v1 is what works in this container) so --mem
# and --cpus-per-task hold at once, and a job starts as soon as it is
# submitted instead of waiting for the next scheduling pass (~2 s). There is
# no slurmdbd: finished jobs are written to a text file that `sacct -c` reads.
# A job's processes that ignore the cancel signal are killed 10 s later, not
# Slurm's default 30 s (KillWait): ample for a job script's trap to remove its
# container, and 20 s less of waiting for the tests of a job without one.
# Everything talks over loopback, so no name service is needed.
desired="$(mktemp)"
trap 'rm -f "$desired"' EXIT
cat >"$desired" <<CONF
# Written by scripts/ensure-slurm.sh; rewritten when it changes.
ClusterName=mahiru
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURMCTLD_PIDFILE
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
KillWait=10
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=mahiru Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
# slurmd reads cgroup.conf from the folder slurm.conf is in.
cgroup_conf="CgroupPlugin=cgroup/v1
ConstrainRAMSpace=yes
ConstrainCores=yes"

daemons_alive() {
    pidfile_alive "$MUNGE_PIDFILE" munged || pidfile_alive "$SLURMCTLD_PIDFILE" slurmctld \
        || pidfile_alive "$SLURMD_PIDFILE" slurmd
}

if ! cmp -s "$desired" "$CONF" || [[ "$(cat "$SLURM_DIR/etc/cgroup.conf" 2>/dev/null)" != "$cgroup_conf" ]]; then
    if daemons_alive; then
        # A changed node (memory, name) or port takes a restart, not a reconfigure.
        log "the Slurm configuration changed; restarting the cluster"
        bash "$(dirname "${BASH_SOURCE[0]}")/stop-slurm.sh" 9>&-
    fi
    log "writing $CONF for node $NODE (ports $PORT and $((PORT + 1)))"
    cp "$desired" "$CONF"
    chmod 0644 "$CONF"
    printf '%s\n' "$cgroup_conf" >"$SLURM_DIR/etc/cgroup.conf"
fi

# Start one daemon (it forks and writes its own pid file) unless the pid file
# names a live one; wait for the pid file and fail with its log if it dies.
# What it prints before it has a log of its own goes to $LOG_DIR/NAME.out.
ensure_daemon() {
    local name="$1" pidfile="$2" logfile="$3" out="$LOG_DIR/$1.out" deadline
    shift 3
    if pidfile_alive "$pidfile" "$name"; then
        log "$name already running (pid $(cat "$pidfile"))"
        return 0
    fi
    rm -f "$pidfile"
    log "starting $name (log: $logfile)"
    # setsid: a Ctrl-C in the calling `make` must not reach the daemon; 9>&-
    # keeps our lock from being inherited, and so held, by it.
    setsid --wait "$@" </dev/null >"$out" 2>&1 9>&- || {
        tail -n 20 "$out" "$logfile" >&2 2>/dev/null || true
        die "$name did not start; see $out and $logfile"
    }
    deadline=$((SECONDS + WAIT_SECONDS))
    until pidfile_alive "$pidfile" "$name"; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$out" "$logfile" >&2 2>/dev/null || true
            die "$name exited during start-up (port $PORT or $((PORT + 1)) taken by another Slurm? then set MAHIRU_SLURM_PORT); see $logfile"
        fi
        sleep 0.1
    done
}

start="$(now)"
started=""
pidfile_alive "$MUNGE_PIDFILE" munged && pidfile_alive "$SLURMCTLD_PIDFILE" slurmctld \
    && pidfile_alive "$SLURMD_PIDFILE" slurmd || started=1
ensure_daemon munged "$MUNGE_PIDFILE" "$MUNGE_DIR/munged.log" \
    runuser -u munge -- munged --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE_PIDFILE" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
ensure_daemon slurmctld "$SLURMCTLD_PIDFILE" "$LOG_DIR/slurmctld.log" slurmctld -f "$CONF"
ensure_daemon slurmd "$SLURMD_PIDFILE" "$LOG_DIR/slurmd.log" slurmd -f "$CONF"

# The node is usable once slurmctld has heard from slurmd. A node that was
# drained (a step that would not die) or marked down stays so across restarts:
# it is resumed once, with the reason Slurm gave.
node_state() { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true; }
deadline=$((SECONDS + WAIT_SECONDS))
resumed=""
while true; do
    state="$(node_state)"
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        drain* | down*)
            if [[ -z "$resumed" ]] && pidfile_alive "$SLURMD_PIDFILE" slurmd; then
                log "node $NODE is $state ($(sinfo -h -N -n "$NODE" -o %E)); resuming it"
                scontrol update NodeName="$NODE" State=RESUME || true
                resumed=1
            fi
            ;;
    esac
    for daemon in munged:"$MUNGE_PIDFILE" slurmctld:"$SLURMCTLD_PIDFILE" slurmd:"$SLURMD_PIDFILE"; do
        pidfile_alive "${daemon#*:}" "${daemon%%:*}" \
            || die "${daemon%%:*} is no longer running; see the logs in $LOG_DIR and $MUNGE_DIR"
    done
    if ((SECONDS >= deadline)); then
        die "node $NODE is '${state:-unknown}', not idle, after ${WAIT_SECONDS}s; see $LOG_DIR/slurmctld.log and slurmd.log"
    fi
    sleep 0.2
done
[[ -n "$started" ]] && log_took "Slurm start-up" "$start"
log "Slurm ready: node $NODE $state in partition mahiru (SLURM_CONF=$CONF)"
echo "$CONF"
