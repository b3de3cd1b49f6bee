#!/usr/bin/env bash
# Make sure a PostgreSQL server for the tests runs on 127.0.0.1, with role
# `mahiru` (password `mahiru`) owning database `mahiru_test`, and print its
# SQLAlchemy URL as the only line on stdout:
#
#   url="$(scripts/ensure-postgres.sh)"
#
# The cluster is private to Mahiru: its data, socket and log live under
# $MAHIRU_STATE_DIR/pg, and it is run with the plain pg_ctl of Debian's
# postgresql package rather than pg_createcluster/pg_ctlcluster, which would
# register it in /etc/postgresql next to the machine's own clusters.
# Idempotent: a running cluster is reused, the role and database are created
# only if missing.
#
# Environment: MAHIRU_STATE_DIR (default /var/tmp/mahiru), MAHIRU_PG_PORT
# (default 54329).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${MAHIRU_PG_PORT:-54329}"
PG_DIR="$MAHIRU_STATE_DIR/pg"
DATA="$PG_DIR/data"
SOCKET_DIR="$PG_DIR/run"
LOGFILE="$PG_DIR/postgres.log"
URL="postgresql+psycopg://mahiru:mahiru@127.0.0.1:$PORT/mahiru_test"

[[ "$PORT" =~ ^[0-9]+$ ]] || die "MAHIRU_PG_PORT must be a port number, got '$PORT'"
require_root

# The newest installed server, e.g. /usr/lib/postgresql/15/bin.
find_pg_bin() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

mkdir -p "$PG_DIR"
# Concurrent runs would race on initdb and on starting the server.
exec 9>"$PG_DIR/ensure-postgres.lock"
flock -w 120 9 || die "another ensure-postgres.sh has held $PG_DIR/ensure-postgres.lock for 2 minutes"

PG_BIN="$(find_pg_bin || true)"
if [[ -z "$PG_BIN" ]]; then
    apt_install postgresql
    PG_BIN="$(find_pg_bin)" || die "postgresql installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
fi

as_postgres() { runuser -u postgres -- "$@"; }
pg_ctl() { as_postgres "$PG_BIN/pg_ctl" -D "$DATA" "$@"; }

install -d -o postgres -g postgres -m 0700 "$DATA"
install -d -o postgres -g postgres -m 0755 "$SOCKET_DIR"
touch "$LOGFILE"
chown postgres:postgres "$LOGFILE"

if [[ ! -f "$DATA/PG_VERSION" ]]; then
    log "initialising a PostgreSQL $(basename "$(dirname "$PG_BIN")") cluster in $DATA"
    as_postgres "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 --no-instructions >"$PG_DIR/initdb.log" 2>&1 || {
        tail -n 20 "$PG_DIR/initdb.log" >&2
        die "initdb failed; see $PG_DIR/initdb.log"
    }
    echo "include_if_exists = 'mahiru.conf'" >>"$DATA/postgresql.conf"
fi

# Rewritten on every run so a changed MAHIRU_PG_PORT or state dir takes effect
# at the next start. This database holds only test data, so durability is
# traded for speed: after a machine crash it may need `rm -rf $PG_DIR`.
cat >"$DATA/mahiru.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
chown postgres:postgres "$DATA/mahiru.conf"

if pg_ctl status >/dev/null 2>&1; then
    running_port="$(sed -n 4p "$DATA/postmaster.pid")"
    [[ "$running_port" == "$PORT" ]] \
        || die "our PostgreSQL already runs on port $running_port, not $PORT; run scripts/stop-postgres.sh first"
    log "PostgreSQL already running on 127.0.0.1:$PORT"
else
    start="$(now)"
    log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOGFILE)"
    # setsid: a Ctrl-C in the calling `make` must not reach the postmaster;
    # 9>&- keeps our lock from being inherited, and so held, by it.
    setsid --wait runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" \
        -s -w -t 30 start </dev/null >&2 9>&- || {
        tail -n 20 "$LOGFILE" >&2
        die "PostgreSQL did not start (port $PORT in use?); see $LOGFILE"
    }
    log_took "PostgreSQL start-up" "$start"
fi

# As superuser over the private Unix socket (peer authentication). CREATEDB
# lets integration tests make throw-away databases of their own.
as_postgres "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$PORT" -d postgres -X -q -At -v ON_ERROR_STOP=1 >&2 <<'SQL'
SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'mahiru')
            THEN 'ALTER ROLE mahiru LOGIN CREATEDB PASSWORD ''mahiru'''
            ELSE 'CREATE ROLE mahiru LOGIN CREATEDB PASSWORD ''mahiru'''
       END
\gexec
SELECT 'CREATE DATABASE mahiru_test OWNER mahiru'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mahiru_test')
\gexec
SQL

# Check what the tests will do: a password login over TCP.
PGPASSWORD=mahiru "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U mahiru -d mahiru_test \
    -X -q -At -c 'SELECT 1' >/dev/null \
    || die "cannot log in as mahiru@127.0.0.1:$PORT/mahiru_test although the server runs; see $LOGFILE"
log "database ready: mahiru_test on 127.0.0.1:$PORT"
echo "$URL"
