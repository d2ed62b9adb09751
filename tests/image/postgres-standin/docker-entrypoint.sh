#!/usr/bin/env bash
# A stand-in for the official postgres image's entrypoint, baked by tests/image/setup.sh
# into an image made from Debian's postgresql-15 when the registry cannot be reached.
# It honours the variables docker-compose.postgres.yaml sets on the official image:
# POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# POSTGRES_DB (default: the user) and PGDATA.
set -Eeuo pipefail

readonly PG_BIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"

# usage: pg_error MESSAGE
pg_error() {
	printf 'postgres-standin: error: %s\n' "$*" >&2
	exit 1
}

# usage: as_postgres COMMAND [ARG...]
#   runs COMMAND as the postgres user, exec-style so signals reach it
as_postgres() {
	setpriv --reuid=postgres --regid=postgres --init-groups "$@"
}

# usage: pg_setup_env
pg_setup_env() {
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		[ -z "${POSTGRES_PASSWORD:-}" ] || pg_error 'both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set; set only one.'
		POSTGRES_PASSWORD="$(<"$POSTGRES_PASSWORD_FILE")"
	fi
	[ -n "${POSTGRES_PASSWORD:-}" ] || pg_error 'POSTGRES_PASSWORD is not set; set it (or POSTGRES_PASSWORD_FILE) to the superuser password.'
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"
}

# usage: pg_init_database_dir
#   initdb, password authentication from other hosts, and POSTGRES_DB, on the first start only
pg_init_database_dir() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	if [ -s "$PGDATA/PG_VERSION" ]; then
		return 0
	fi
	local pwfile
	pwfile="$(mktemp)"
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	chown postgres "$pwfile"
	as_postgres "$PG_BIN/initdb" --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
	rm -f "$pwfile"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		as_postgres "$PG_BIN/pg_ctl" --pgdata="$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
		printf 'CREATE DATABASE :"db";\n' | as_postgres "$PG_BIN/psql" -v ON_ERROR_STOP=1 -q \
			--username="$POSTGRES_USER" --dbname=postgres --set=db="$POSTGRES_DB"
		as_postgres "$PG_BIN/pg_ctl" --pgdata="$PGDATA" -w -m fast stop >/dev/null
	fi
}

_main() {
	if [ "${1:-}" = 'postgres' ]; then
		shift
		pg_setup_env
		pg_init_database_dir
		exec setpriv --reuid=postgres --regid=postgres --init-groups \
			"$PG_BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
	fi
	exec "$@"
}

_main "$@"
