#!/usr/bin/env bash
# Stop the PostgreSQL cluster that ensure-postgres.sh runs under
# $MAHIRU_STATE_DIR/pg. Its data stays, so the next ensure-postgres.sh is
# quick. Idempotent: with the cluster already down it says so and succeeds.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DATA="$MAHIRU_STATE_DIR/pg/data"

if [[ ! -f "$DATA/postmaster.pid" ]]; then
    log "PostgreSQL in $DATA is not running; nothing to stop"
    exit 0
fi
require_root
PG_BIN="/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin"
[[ -x "$PG_BIN/pg_ctl" ]] || die "no pg_ctl in $PG_BIN for the cluster in $DATA"

# pg_ctl status also clears up after a postmaster that died without cleaning up.
if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "PostgreSQL in $DATA is not running (stale pid file); nothing to stop"
    exit 0
fi
log "stopping PostgreSQL in $DATA"
# fast: roll back open sessions (a test may have left one) instead of waiting.
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DATA" -s -m fast -w -t 30 stop >&2 \
    || die "PostgreSQL in $DATA did not stop within 30 s; see $MAHIRU_STATE_DIR/pg/postgres.log"
log "PostgreSQL stopped"
