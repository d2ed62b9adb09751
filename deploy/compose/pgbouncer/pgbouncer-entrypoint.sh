#!/usr/bin/env bash
# PgBouncer in front of one PostgreSQL server, configured from the environment:
#
#   PGBOUNCER_SERVER_HOST, PGBOUNCER_SERVER_PORT   the server (default postgres:5432)
#   PGBOUNCER_USER, PGBOUNCER_PASSWORD             the one user clients and PgBouncer log in as
#   PGBOUNCER_POOL_MODE                            transaction (default) or session
#   PGBOUNCER_CONFIG_DIR                           where the config is written (default /tmp/pgbouncer)
#
# Everything else keeps the package's defaults (default_pool_size 20, max_client_conn 100).
set -Eeuo pipefail

# usage: pgbouncer_error MESSAGE...
pgbouncer_error() {
	printf 'pgbouncer-entrypoint.sh: error: %s\n' "$*" >&2
}

# usage: pgbouncer_quote VALUE
#   VALUE as an auth_file field: in double quotes, a double quote doubled
pgbouncer_quote() {
	printf '"%s"' "${1//\"/\"\"}"
}

# usage: pgbouncer_write_config DIR
pgbouncer_write_config() {
	local dir="$1"
	mkdir -p "$dir"
	chmod 0700 "$dir"
	printf '%s %s\n' "$(pgbouncer_quote "$PGBOUNCER_USER")" "$(pgbouncer_quote "$PGBOUNCER_PASSWORD")" \
		>"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<-INI
		[databases]
		* = host=${PGBOUNCER_SERVER_HOST:-postgres} port=${PGBOUNCER_SERVER_PORT:-5432}

		[pgbouncer]
		listen_addr = *
		listen_port = 6432
		unix_socket_dir =
		auth_type = scram-sha-256
		auth_file = $dir/userlist.txt
		pool_mode = ${PGBOUNCER_POOL_MODE:-transaction}
		pidfile = $dir/pgbouncer.pid
	INI
}

_main() {
	if [ -z "${PGBOUNCER_USER:-}" ] || [ -z "${PGBOUNCER_PASSWORD:-}" ]; then
		pgbouncer_error "set PGBOUNCER_USER and PGBOUNCER_PASSWORD to the PostgreSQL user that clients log in as."
		exit 2
	fi
	case "${PGBOUNCER_POOL_MODE:-transaction}" in
	transaction | session) ;;
	*)
		pgbouncer_error "PGBOUNCER_POOL_MODE=${PGBOUNCER_POOL_MODE} is not transaction or session."
		exit 2
		;;
	esac
	local dir="${PGBOUNCER_CONFIG_DIR:-/tmp/pgbouncer}"
	pgbouncer_write_config "$dir"
	exec pgbouncer "$dir/pgbouncer.ini"
}

_main "$@"
