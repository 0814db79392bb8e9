#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the dataset store's PostgreSQL test.
#
#   export ALAL_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"   # install if missing, start, print URL
#   bash .ci/postgres.sh stop                                 # stop it and delete its data dir
#
# Idempotent: installs Debian's postgresql if no server binaries are found, creates the data dir on
# first use, starts the server if it is not running, creates the database if missing. Only the URL
# goes to stdout; progress goes to stderr. The server runs as a non-root user (postgres when run as
# root), listens on 127.0.0.1 only, and keeps its socket in its data dir.
# Settings (environment): ALAL_PG_PORT (54329), ALAL_PG_DIR (/tmp/alal-pg), PYTHON (when set, the
# interpreter into which ase-db-backends, which brings psycopg2-binary, is installed if missing).
set -euo pipefail

port="${ALAL_PG_PORT:-54329}"
dir="${ALAL_PG_DIR:-/tmp/alal-pg}"
user=alal
password=alal-throwaway   # a local, throwaway server: the password protects nothing
database=alal_test

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$bin" ]] && command -v pg_ctl >/dev/null; then
        bin="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
    fi
    echo "$bin"
}

bin="$(find_bin)"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    log "installing postgresql from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin="$(find_bin)"
fi

# Run the server and its tools as a non-root user: initdb refuses root.
if [[ "$(id -u)" == 0 ]]; then
    as_owner() { runuser -u postgres -- "$@"; }
else
    as_owner() { "$@"; }
fi

if [[ "${1:-}" == stop ]]; then
    if [[ -d "$dir" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
        rm -rf "$dir"
    fi
    exit 0
fi

if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    log "initialising $dir/data"
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '%s\n' "$password" > "$dir/pwfile"
    [[ "$(id -u)" == 0 ]] && chown -R postgres: "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >&2
    rm -f "$dir/pwfile"
fi

if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "starting the server on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start >&2
fi

if ! as_owner "$bin/psql" -h "$dir" -p "$port" -U "$user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$database'" | grep -q 1; then
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U "$user" "$database" >&2
fi

if [[ -n "${PYTHON:-}" ]] && ! "$PYTHON" -c "import ase_db_backends.postgresql" 2>/dev/null; then
    log "installing ase-db-backends (psycopg2-binary) into $PYTHON"
    "$PYTHON" -m pip install --quiet "ase-db-backends>=0.11" >&2
fi

echo "postgresql://$user:$password@127.0.0.1:$port/$database"
