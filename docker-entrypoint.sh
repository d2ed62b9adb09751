#!/usr/bin/env bash
# The migrate-init image's entrypoint, in the style of docker-library/postgres.
#
#   (no arguments)              init-container mode: exec python migrate.py, exit with its code
#   run -- COMMAND [ARGS...]    wrapper mode: run the init sequence, then exec COMMAND (only on exit 0)
#   upgrade REV | status | …    exec python migrate.py COMMAND ARGS (a one-off command)
#   -h | --help | --version     exec python migrate.py with that option
#   anything else               exec'd as it is, WITHOUT migrating (`docker run IMAGE sh` is a shell,
#                               never a migration of whatever DATABASE_URL points at; issue 12)
#
# Configuration (DATABASE_URL or DATABASE_URL_FILE, and the rest) is read by
# Python (migrate_init/config.py), so this script stays short: see README.md.
set -Eeuo pipefail

readonly MIGRATE_PY=/app/migrate.py
# migrate.py's commands (migrate_init/cli.py); anything else is a command to wrap
readonly MIGRATE_COMMANDS=' run upgrade status history graph heads current wait plan check verify lint stamp accept resolve manifest alembic help '

# usage: docker_error MESSAGE...
docker_error() {
	printf 'docker-entrypoint.sh: error: %s\n' "$*" >&2
}

# usage: docker_is_migrate_command ARG
#    ie: if docker_is_migrate_command "$1"; then ...
#   true for one of migrate.py's commands or an option (-h, --help, --version)
docker_is_migrate_command() {
	case "$1" in
	-*) return 0 ;;
	esac
	[[ "$MIGRATE_COMMANDS" == *" $1 "* ]]
}

# usage: _forward_signal SIGNAL
#   trap handler: hand SIGNAL to the running migration, or exit at once when there is none
_forward_signal() {
	local signal="$1"
	if [ -n "${_migrate_pid:-}" ] && kill -0 "$_migrate_pid" 2>/dev/null; then
		kill -s "$signal" "$_migrate_pid" 2>/dev/null || true
	else
		exit "$((128 + $(kill -l "$signal")))"
	fi
}

# usage: docker_run_init
#   runs the init sequence as a child, so that the wrapped command can be exec'd after it;
#   TERM and INT are forwarded, so Python still rolls back the running migration and
#   exits 143 or 130, and that code becomes this script's
docker_run_init() {
	trap '_forward_signal TERM' TERM
	trap '_forward_signal INT' INT
	# a background job of a non-interactive shell starts with SIGINT ignored: undo that
	env --default-signal=INT python "$MIGRATE_PY" &
	_migrate_pid=$!
	local status
	while :; do
		status=0
		wait "$_migrate_pid" || status=$?
		# wait also returns early when a trapped signal arrives; go on until the child is gone
		kill -0 "$_migrate_pid" 2>/dev/null || break
	done
	# the child's own exit code (bash keeps it), not a code from an interrupted wait
	status=0
	wait "$_migrate_pid" 2>/dev/null || status=$?
	trap - TERM INT
	_migrate_pid=
	return "$status"
}

# usage: docker_setup_deps_path
#   makes the packages that EXTRA_PIP_PACKAGES / PIP_REQUIREMENTS installed importable by
#   the wrapped command (it may not know about DEPS_TARGET)
docker_setup_deps_path() {
	if [ -n "${DEPS_TARGET:-}" ] && [ -d "$DEPS_TARGET" ]; then
		export PYTHONPATH="${DEPS_TARGET}${PYTHONPATH:+:$PYTHONPATH}"
	fi
}

_main() {
	# Files on the data volume stay writable by group 0: OpenShift may run the
	# next pod as another UID of that group.
	umask 0002
	if [ "$#" -eq 0 ]; then
		exec python "$MIGRATE_PY"
	fi
	if [ "$1" = run ] && [ "${2:-}" = -- ]; then
		shift 2
		if [ "$#" -eq 0 ]; then
			docker_error "'run --' needs a command to start after the init sequence, e.g. 'run -- uvicorn app:app'."
			exit 2
		fi
		_wrap "$@"
	fi
	if docker_is_migrate_command "$1"; then
		exec python "$MIGRATE_PY" "$@"
	fi
	exec "$@"
}

# usage: _wrap COMMAND [ARGS...]
#   the init sequence, then exec COMMAND when it exited 0
_wrap() {
	local status=0
	docker_run_init || status=$?
	case "$status" in
	0) ;;
	130 | 143)
		# no line of our own here: behind a stalled log reader it would block the exit
		# (migrate.py's summary already says it was stopped)
		exit "$status"
		;;
	*)
		docker_error "the init sequence exited with code $status, so '$1' was not started. Read the log above, fix the cause and restart the container."
		exit "$status"
		;;
	esac
	docker_setup_deps_path
	exec "$@"
}

_main "$@"
