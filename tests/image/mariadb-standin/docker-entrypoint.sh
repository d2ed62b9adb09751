#!/usr/bin/env bash
# A stand-in for the official mariadb image's entrypoint, baked by tests/image/setup.sh
# into an image made from Debian's mariadb-server (10.11) when the registry cannot be reached.
# On the first start (an empty /var/lib/mysql) it creates the system tables, then the
# accounts and database that these variables of the official image name:
#   MARIADB_ROOT_PASSWORD, or MARIADB_RANDOM_ROOT_PASSWORD (printed once in the log), or
#     MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: one of the three is required, as in the official image;
#   MARIADB_ROOT_HOST (default %): the host root may also connect from, with the same password;
#   MARIADB_DATABASE: a database to create;
#   MARIADB_USER and MARIADB_PASSWORD: an account with every privilege on MARIADB_DATABASE.
# Each also reads NAME_FILE (a Docker secret; setting both is an error), and each accepts the
# official image's older MYSQL_ spelling (MYSQL_ROOT_PASSWORD...). /docker-entrypoint-initdb.d,
# time-zone tables and replication variables are not supported. The server listens on 3306.
set -Eeuo pipefail

readonly DATADIR=/var/lib/mysql
readonly SOCKET=/run/mysqld/mysqld.sock

# usage: mariadb_log MESSAGE...
mariadb_log() {
	printf 'mariadb-standin: %s\n' "$*" >&2
}

# usage: mariadb_error MESSAGE...
mariadb_error() {
	printf 'mariadb-standin: error: %s\n' "$*" >&2
	exit 1
}

# usage: as_mysql COMMAND [ARG...]
#   runs COMMAND as the mysql user
as_mysql() {
	setpriv --reuid=mysql --regid=mysql --init-groups "$@"
}

# usage: file_env NAME [DEFAULT]
#   sets MARIADB_NAME from MARIADB_NAME, MARIADB_NAME_FILE, MYSQL_NAME or MYSQL_NAME_FILE
#    ie: file_env PASSWORD
file_env() {
	local name="$1" default="${2:-}" variable value="" found=""
	for variable in "MARIADB_$name" "MYSQL_$name"; do
		local file_variable="${variable}_FILE"
		if [ -n "${!variable:-}" ] && [ -n "${!file_variable:-}" ]; then
			mariadb_error "both $variable and $file_variable are set; set only one."
		fi
		if [ -z "$found" ] && [ -n "${!variable:-}" ]; then
			value="${!variable}"
			found="$variable"
		elif [ -z "$found" ] && [ -n "${!file_variable:-}" ]; then
			[ -r "${!file_variable}" ] || mariadb_error "$file_variable=${!file_variable} is not a readable file."
			value="$(<"${!file_variable}")"
			found="$file_variable"
		fi
	done
	printf -v "MARIADB_$name" '%s' "${value:-$default}"
	export "MARIADB_$name"
}

# usage: sql_string TEXT
#   TEXT as the body of a single-quoted SQL string literal
sql_string() {
	local text="${1//\\/\\\\}"
	text="${text//$'\n'/\\n}"
	printf '%s' "${text//\'/\\\'}"
}

# usage: sql_identifier NAME
#   NAME as the body of a backquoted identifier
sql_identifier() {
	printf '%s' "${1//\`/\`\`}"
}

# usage: mariadb_setup_env
mariadb_setup_env() {
	file_env ROOT_PASSWORD
	file_env ROOT_HOST '%'
	file_env DATABASE
	file_env USER
	file_env PASSWORD
	file_env ALLOW_EMPTY_ROOT_PASSWORD
	file_env RANDOM_ROOT_PASSWORD
}

# usage: mariadb_check_env
#   what the official image refuses on a first start
mariadb_check_env() {
	if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] \
		&& [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
		mariadb_error 'the database is uninitialized and no root password option is set: set one of' \
			'MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD or MARIADB_RANDOM_ROOT_PASSWORD.'
	fi
	if [ "$MARIADB_USER" = root ]; then
		mariadb_error 'MARIADB_USER=root: root is created anyway; set MARIADB_ROOT_PASSWORD instead.'
	fi
	if [ -n "$MARIADB_USER" ] && [ -z "$MARIADB_PASSWORD" ]; then
		mariadb_error "MARIADB_USER=$MARIADB_USER has no MARIADB_PASSWORD (or MARIADB_PASSWORD_FILE)."
	fi
	if [ -n "$MARIADB_PASSWORD" ] && [ -z "$MARIADB_USER" ]; then
		mariadb_error 'MARIADB_PASSWORD is set but MARIADB_USER is not.'
	fi
}

# usage: mariadb_temp_server_start
#   a socket-only server for the first start's SQL: clients never see a half-made database
mariadb_temp_server_start() {
	# setpriv itself, not as_mysql: $! must be the server's own pid (setpriv execs it)
	setpriv --reuid=mysql --regid=mysql --init-groups mariadbd --datadir="$DATADIR" --socket="$SOCKET" \
		--skip-networking --skip-log-bin --default-time-zone=SYSTEM >/dev/null 2>&1 &
	_temp_server_pid=$!
	local try
	for try in $(seq 1 60); do
		if mariadb-admin --socket="$SOCKET" --user=root ping >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$_temp_server_pid" 2>/dev/null || mariadb_error 'the server stopped during its first start.'
		[ "$try" -lt 60 ] && sleep 0.5
	done
	mariadb_error 'the server did not answer within 30 s of its first start.'
}

# usage: mariadb_temp_server_stop
mariadb_temp_server_stop() {
	kill "$_temp_server_pid"
	wait "$_temp_server_pid" || true
}

# usage: mariadb_init_sql
#   prints the SQL that creates the accounts and the database
mariadb_init_sql() {
	local root_password="$MARIADB_ROOT_PASSWORD" host
	host="$(sql_string "$MARIADB_ROOT_HOST")"
	cat <<-SQL
		SET @@SESSION.SQL_LOG_BIN=0;
		DROP USER IF EXISTS root@'127.0.0.1', root@'::1', ''@'localhost';
		EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\', \'\'@\'', @@hostname, '\'');
		SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$(sql_string "$root_password")');
	SQL
	if [ "$MARIADB_ROOT_HOST" != localhost ]; then
		cat <<-SQL
			CREATE USER 'root'@'$host' IDENTIFIED BY '$(sql_string "$root_password")';
			GRANT ALL ON *.* TO 'root'@'$host' WITH GRANT OPTION;
			GRANT PROXY ON ''@'%' TO 'root'@'$host' WITH GRANT OPTION;
		SQL
	fi
	if [ -n "$MARIADB_DATABASE" ]; then
		printf "CREATE DATABASE IF NOT EXISTS \`%s\`;\n" "$(sql_identifier "$MARIADB_DATABASE")"
	fi
	if [ -n "$MARIADB_USER" ]; then
		printf "CREATE USER '%s'@'%%' IDENTIFIED BY '%s';\n" \
			"$(sql_string "$MARIADB_USER")" "$(sql_string "$MARIADB_PASSWORD")"
		if [ -n "$MARIADB_DATABASE" ]; then
			printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" \
				"$(sql_identifier "$MARIADB_DATABASE")" "$(sql_string "$MARIADB_USER")"
		fi
	fi
}

# usage: mariadb_init_database_dir
#   system tables, accounts and MARIADB_DATABASE, on the first start only
mariadb_init_database_dir() {
	mkdir -p "$DATADIR" "${SOCKET%/*}"
	chown mysql:mysql "$DATADIR" "${SOCKET%/*}"
	if [ -d "$DATADIR/mysql" ]; then
		return 0
	fi
	mariadb_check_env
	if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
		MARIADB_ROOT_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
		mariadb_log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
	fi
	mariadb_log "initializing $DATADIR"
	local output
	output="$(as_mysql mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
		--skip-test-db --skip-log-bin --default-time-zone=SYSTEM 2>&1)" \
		|| mariadb_error "mariadb-install-db failed: $output"
	mariadb_temp_server_start
	mariadb_init_sql | mariadb --socket="$SOCKET" --user=root --binary-mode \
		|| { mariadb_temp_server_stop; mariadb_error 'creating the accounts and the database failed.'; }
	mariadb_temp_server_stop
	mariadb_log 'initialization done; starting the server'
}

_main() {
	if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
		set -- mariadbd "$@"
	fi
	if [ "$1" = mariadbd ] || [ "$1" = mysqld ]; then
		shift
		mariadb_setup_env
		mariadb_init_database_dir
		exec setpriv --reuid=mysql --regid=mysql --init-groups mariadbd --datadir="$DATADIR" "$@"
	fi
	exec "$@"
}

_main "$@"
