#!/bin/sh
# Entrypoint of the stand-in PostgreSQL image (xtask/src/images/standin.rs). It honours the
# environment contract of the official postgres image, so that manifests written for that image
# run unchanged: POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres), POSTGRES_DB
# (default: the user's name), PGDATA (default /var/lib/postgresql/data), and *.sql or *.sh files
# in /docker-entrypoint-initdb.d run once, after the first initdb.
#
# It runs as the postgres user (uid 999) from the start and writes only to PGDATA, /tmp and
# /var/run/postgresql, so it works on a read-only root filesystem. It stays as PID 1 and turns
# SIGTERM into PostgreSQL's fast shutdown (postgres alone would wait for every client to leave).
set -eu

say() { printf 'standin-postgres: %s\n' "$*" >&2; }

# `docker run image -c shared_buffers=64MB`: options are for the server.
if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi
shift

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

# On every start, as the official image does: a kubelet applying fsGroup makes the volume's
# folders group-writable, which PostgreSQL refuses for its data directory.
if [ -d "$PGDATA" ]; then
    chmod 700 "$PGDATA" 2>/dev/null || :
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        cat >&2 <<'MSG'
Error: the database is uninitialized and no superuser password was given.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser, for example
       "-e POSTGRES_PASSWORD=password" on "docker run"; without it no client could
       connect over TCP, so this stand-in image refuses to start.
MSG
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA" 2>/dev/null || {
        say "cannot take over $PGDATA: it must be writable by uid $(id -u) (mount a volume there)"
        exit 1
    }
    say "initializing the database cluster in $PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    # initdb lets TCP clients in from loopback only; the container's network is the boundary.
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\njit = off\n" >>"$PGDATA/postgresql.conf"

    # A private server on the Unix socket only, for creating the database and running init files.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres --quiet \
            --set=db="$db" <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
        *.sql) say "running $file"
            psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$db" --quiet -f "$file" ;;
        *.sh) say "running $file"
            # shellcheck disable=SC1090 # the files are the user's, found at run time
            . "$file" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    say "initialization done; starting the server"
fi

postgres "$@" &
child=$!
# SIGINT is PostgreSQL's fast shutdown: active sessions are ended instead of waited for.
trap 'kill -INT "$child" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$child" 2>/dev/null; do
    if wait "$child"; then status=0; else status=$?; fi
done
exit "$status"
