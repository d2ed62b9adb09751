#!/usr/bin/env bash
# usage: bash tests/run.sh [PYTEST_ARGS...]
# Runs the tests on a fresh Debian machine, installing only what the chosen
# tests need:
#   tests/unit only            the .venv (and python3-venv if it is missing),
#                              kubectl (Debian's kubernetes-client) and checkov
#                              (its own venv, build/checkov-venv) for test_kubernetes.py;
#   tests/integration as well  PostgreSQL, MariaDB and shellcheck from apt;
#   anything else, or no path  the Docker engine too (tests/image/setup.sh: with no path,
#                              in the background while tests/unit and tests/integration
#                              run), podman and catatonit, and ruff and mypy --strict first.
# Without path arguments every test runs (pytest's testpaths); with paths, only those.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
REQUIREMENTS=("$REPO/requirements.txt" "$REPO/requirements-dev.txt")
# checkov pins packaging<24, which cannot share .venv with requirements.txt's packaging.
CHECKOV_VENV="$REPO/build/checkov-venv"
CHECKOV_REQUIREMENTS="$REPO/tests/requirements-checkov.txt"
DOCKER_SETUP_LOG="$REPO/build/docker-setup.log"
DOCKER_SETUP_PID=""

# usage: _log MESSAGE...
_log() {
	printf 'tests/run.sh: %s\n' "$*" >&2
}

# usage: _scope [PYTEST_ARGS...]
# Prints unit, integration or all: the widest test folder among the path
# arguments (those that exist, relative to the repository, ignoring a ::test
# suffix; not the value of an option such as --deselect PATH).
_scope() {
	local arg path scope="" value_of=""
	for arg in "$@"; do
		if [ -n "$value_of" ]; then
			value_of=""
			continue
		fi
		case "$arg" in
		--deselect | --ignore | --ignore-glob | --basetemp | --rootdir | --confcutdir | -c | -k | -m | -o | -p)
			value_of="$arg"
			continue
			;;
		-*) continue ;;
		esac
		path="${arg%%::*}"
		if [ ! -e "$path" ]; then
			continue
		fi
		path="$(realpath -- "$path")"
		case "$path/" in
		"$REPO/tests/unit/"*) scope="${scope:-unit}" ;;
		"$REPO/tests/integration/"*) [ "$scope" = all ] || scope=integration ;;
		*) scope=all ;;
		esac
	done
	printf '%s\n' "${scope:-all}"
}

# usage: _missing_apt_packages SCOPE
# Prints the Debian packages the tests of SCOPE need that are not installed.
_missing_apt_packages() {
	local scope="$1"
	if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
		echo python3-venv
	fi
	# tests/unit/test_kubernetes.py renders every kustomization with `kubectl kustomize`
	if ! command -v kubectl >/dev/null; then
		echo kubernetes-client
	fi
	if [ "$scope" = unit ]; then
		return 0
	fi
	if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
		echo postgresql
	fi
	# tests/support/myserver.py runs mariadb-install-db and mariadbd in a temp
	# dir of its own, on its own port and socket: a system MariaDB service that
	# apt may start is left alone and not used.
	if [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb-install-db >/dev/null; then
		echo mariadb-server
	fi
	# tests/support/pgbouncer.py runs Debian's pgbouncer in front of the test server
	# (tests/integration/test_pgbouncer.py; never skipped).
	if [ ! -x /usr/sbin/pgbouncer ]; then
		echo pgbouncer
	fi
	if ! command -v shellcheck >/dev/null; then
		echo shellcheck
	fi
	# tests/integration/test_stranger_ux.py runs `plan --sql`'s file with the sqlite3 CLI
	# (psql comes with postgresql)
	if ! command -v sqlite3 >/dev/null; then
		echo sqlite3
	fi
	if [ "$scope" != all ]; then
		return 0
	fi
	# tests/image/test_kubernetes_play.py plays the Kubernetes manifests with podman kube play
	if ! command -v podman >/dev/null; then
		echo podman
	fi
	if ! command -v catatonit >/dev/null && [ ! -x /usr/libexec/podman/catatonit ]; then
		echo catatonit
	fi
}

# usage: _install_apt_packages SCOPE
_install_apt_packages() {
	local missing
	mapfile -t missing < <(_missing_apt_packages "$1")
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	_log "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# usage: _requirements_stamp
# Prints what the venv was built from, so a changed pin triggers a reinstall.
_requirements_stamp() {
	python3 --version
	cat "${REQUIREMENTS[@]}"
}

# usage: _ensure_venv
_ensure_venv() {
	local stamp="$VENV/.requirements-stamp"
	if ! "$VENV/bin/python" -c '' 2>/dev/null; then
		_log "creating $VENV"
		rm -rf "$VENV"
		python3 -m venv "$VENV"
	fi
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(_requirements_stamp)" ]; then
		return 0
	fi
	_log "installing requirements.txt and requirements-dev.txt into $VENV"
	"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
		-r "${REQUIREMENTS[0]}" -r "${REQUIREMENTS[1]}"
	_requirements_stamp >"$stamp"
}

# usage: _ensure_checkov_venv
#   build/checkov-venv with the hash-locked checkov of tests/requirements-checkov.txt
_ensure_checkov_venv() {
	local stamp="$CHECKOV_VENV/.requirements-stamp" want
	want="$(python3 --version; sha256sum <"$CHECKOV_REQUIREMENTS")"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$CHECKOV_VENV/bin/checkov" ]; then
		return 0
	fi
	_log "installing checkov (tests/requirements-checkov.txt) into $CHECKOV_VENV"
	rm -rf "$CHECKOV_VENV"
	python3 -m venv "$CHECKOV_VENV"
	"$CHECKOV_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
		--require-hashes -r "$CHECKOV_REQUIREMENTS"
	printf '%s\n' "$want" >"$stamp"
}

# usage: _setup_docker
# tests/image/setup.sh prepares the Docker engine and writes build/docker.env.
_setup_docker() {
	bash "$REPO/tests/image/setup.sh"
	_source_docker_env
}

# usage: _source_docker_env
_source_docker_env() {
	if [ -f "$REPO/build/docker.env" ]; then
		set -a
		# shellcheck source=/dev/null
		. "$REPO/build/docker.env"
		set +a
	fi
}

# usage: _start_docker_setup
# Runs tests/image/setup.sh in the background, its output in $DOCKER_SETUP_LOG: on a fresh
# machine it installs the engine and builds the stand-in images for minutes, and the unit and
# integration tests, which need none of it, run meanwhile.  _await_docker_setup joins it.
_start_docker_setup() {
	mkdir -p "$REPO/build"
	_log "preparing the Docker engine in the background (tests/image/setup.sh, output in $DOCKER_SETUP_LOG)"
	# A session of its own, so that _stop_docker_setup ends debootstrap and apt-get with it.
	setsid bash "$REPO/tests/image/setup.sh" >"$DOCKER_SETUP_LOG" 2>&1 </dev/null &
	DOCKER_SETUP_PID=$!
	trap _stop_docker_setup EXIT
}

# usage: _stop_docker_setup
# On the way out (an error, Ctrl-C): a setup still running is not left behind.
_stop_docker_setup() {
	if [ -n "$DOCKER_SETUP_PID" ] && kill -0 "$DOCKER_SETUP_PID" 2>/dev/null; then
		kill -- "-$DOCKER_SETUP_PID" 2>/dev/null || kill "$DOCKER_SETUP_PID" 2>/dev/null || true
	fi
}

# usage: _await_docker_setup
# Waits for the background setup, shows its output, and fails with its exit code.
# Nothing to do when it was run in the foreground.
_await_docker_setup() {
	local code=0
	if [ -z "$DOCKER_SETUP_PID" ]; then
		return 0
	fi
	wait "$DOCKER_SETUP_PID" || code=$?
	DOCKER_SETUP_PID=""
	cat "$DOCKER_SETUP_LOG" >&2
	if [ "$code" -ne 0 ]; then
		_log "error: tests/image/setup.sh failed (exit $code); its output is above, the image tests cannot run."
		return "$code"
	fi
	_source_docker_env
}

# usage: _run_static_checks
#   ruff (rules and format in pyproject.toml) on the whole repository, mypy --strict on the package
_run_static_checks() {
	_log "ruff check . and ruff format --check . (the whole repository)"
	"$VENV/bin/ruff" check .
	"$VENV/bin/ruff" format --check .
	_log "mypy --strict migrate_init"
	"$VENV/bin/mypy" --strict migrate_init
}

# usage: _workers
# Prints how many pytest-xdist workers to use: one per core and one more, 2 to 5.
# The tests are mostly subprocesses and servers waiting on each other: on 2 cores,
# two workers used 1.4 cores on average and three 1.7, and the unit and integration
# run went from 23.4 to 21.6 minutes.
_workers() {
	local workers
	workers="$(($(nproc 2>/dev/null || echo 1) + 1))"
	if [ "$workers" -lt 2 ]; then workers=2; fi
	if [ "$workers" -gt 5 ]; then workers=5; fi
	printf '%s\n' "$workers"
}

# usage: _pytest PYTEST_ARGS...
_pytest() {
	local code=0
	"$VENV/bin/python" -m pytest "$@" || code=$?
	if [ "$code" -eq 5 ]; then
		_log "error: pytest collected no tests; check the arguments ($*) and tests/."
		return 1
	fi
	return "$code"
}

# usage: _has_paths [PYTEST_ARGS...]
# Whether an argument names a test file or folder (then only those run).
_has_paths() {
	local arg
	for arg in "$@"; do
		if [ "${arg#-}" = "$arg" ] && [ -e "${arg%%::*}" ]; then
			return 0
		fi
	done
	return 1
}

# usage: _run_pytest SCOPE [PYTEST_ARGS...]
# The unit and integration tests run in parallel (pytest-xdist, -n); the image
# tests share one Docker engine, one image build and fixed names, so they run
# in order, in a pytest of their own. With no path argument (every test) that
# is two runs: tests/unit and tests/integration in parallel, then tests/image.
# -n N or -p no:xdist among the arguments chooses for itself.
_run_pytest() {
	local scope="$1" arg code parallel=(-n "$(_workers)")
	shift
	for arg in "$@"; do
		case "$arg" in
		-n | -n* | --numprocesses* | no:xdist) parallel=() ;;
		esac
	done
	if _has_paths "$@"; then
		if [ "$scope" = all ]; then
			parallel=() # a path outside tests/unit and tests/integration: tests/image among them
		fi
		_pytest "${parallel[@]}" "$@"
		return
	fi
	local first=0 second=0
	"$VENV/bin/python" -m pytest "${parallel[@]}" "$@" tests/unit tests/integration || first=$?
	_await_docker_setup || return $?
	"$VENV/bin/python" -m pytest "$@" tests/image || second=$?
	# 5 is "nothing selected": fine for one of the two runs (-k ...), an error for both.
	if [ "$first" -eq 5 ] && [ "$second" -eq 5 ]; then
		_log "error: pytest collected no tests; check the arguments ($*) and tests/."
		return 1
	fi
	for code in "$first" "$second"; do
		if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then
			return "$code"
		fi
	done
	return 0
}

# usage: _main [PYTEST_ARGS...]
_main() {
	cd "$REPO"
	local scope
	scope="$(_scope "$@")"
	_log "running the $scope tests"
	_install_apt_packages "$scope"
	# Two venvs, two pip installs that wait mostly on the network: side by side.
	local checkov=0 checkov_pid
	_ensure_checkov_venv &
	checkov_pid=$!
	_ensure_venv
	wait "$checkov_pid" || checkov=$?
	if [ "$checkov" -ne 0 ]; then
		_log "error: installing checkov into $CHECKOV_VENV failed (exit $checkov); see above."
		return "$checkov"
	fi
	export PATH="$VENV/bin:$PATH"
	if [ "$scope" = all ] && ! _has_paths "$@"; then
		_start_docker_setup # joined before tests/image, in _run_pytest
		_run_static_checks
	elif [ "$scope" = all ]; then
		_setup_docker
		_run_static_checks
	fi
	# The tests start migrate.py thousands of times with PYTHONDONTWRITEBYTECODE=1 (a stranger's
	# environment, tests/support/process.py): compiled once here, not once per process.
	"$VENV/bin/python" -m compileall -q -j 0 migrate_init migrate.py migrations >/dev/null
	_run_pytest "$scope" "$@"
}

_main "$@"
