# shellcheck shell=bash
# Shared helpers for the infrastructure scripts in this folder.
# Sourced, never run: it sets no shell options of its own so that each
# script states `set -euo pipefail` itself and reads correctly on its own.

MAHIRU_STATE_DIR="${MAHIRU_STATE_DIR:-/var/tmp/mahiru}"

log() { printf '[mahiru] %s\n' "$*" >&2; }

die() {
    printf '[mahiru] ERROR: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch with a fractional part, for step timings.
now() { date +%s.%N; }

# Print "<label> took N.Ns" for a step that started at $2.
log_took() {
    local label="$1" start="$2"
    log "$(awk -v s="$start" -v e="$(now)" -v l="$label" 'BEGIN { printf "%s took %.1fs", l, e - s }')"
}

require_root() {
    [[ "$(id -u)" -eq 0 ]] || die "$(basename "$0") must run as root (it installs Debian packages and starts daemons)"
}

# Install Debian packages that are not installed yet. `apt-get update` runs at
# most once per script run, and only when something is actually missing, so a
# second run on a set-up machine touches neither the network nor dpkg.
_mahiru_apt_updated=""
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    require_root
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand (this script expects Debian)"
    # apt's chatter goes to a log file; it is shown only when something fails.
    local start aptlog="$MAHIRU_STATE_DIR/apt.log"
    mkdir -p "$MAHIRU_STATE_DIR"
    start="$(now)"
    if [[ -z "$_mahiru_apt_updated" ]]; then
        log "apt-get update (log: $aptlog)"
        apt-get update >>"$aptlog" 2>&1 || {
            tail -n 20 "$aptlog" >&2
            die "apt-get update failed (is deb.debian.org reachable?); see $aptlog"
        }
        _mahiru_apt_updated=1
    fi
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        </dev/null >>"$aptlog" 2>&1 || {
        tail -n 20 "$aptlog" >&2
        die "apt-get install ${missing[*]} failed; see $aptlog"
    }
    log_took "install of ${missing[*]}" "$start"
}

# Is the process in pid file $1 alive (and is it still the program named $2)?
pidfile_alive() {
    local pidfile="$1" comm="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # Compare the command name so a recycled pid is not mistaken for ours.
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]] || return 1
    # A killed daemon lingers as a zombie until its (adoptive) parent reaps
    # it, which can take a while here; it is dead all the same.
    local stat
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}
