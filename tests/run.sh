#!/usr/bin/env bash
# usage: bash tests/run.sh [PYTEST_ARGS...]
# Runs every test on a fresh Debian machine: installs what is missing (apt
# packages, the .venv, the Docker engine via tests/docker/setup.sh), then pytest.
# Without path arguments all of tests/ runs; with paths, only those.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
REQUIREMENTS=("$REPO/requirements.txt" "$REPO/requirements-dev.txt")

# usage: _log MESSAGE...
_log() {
	printf 'tests/run.sh: %s\n' "$*" >&2
}

# usage: _missing_apt_packages
# Prints the Debian packages the tests need that are not installed.
_missing_apt_packages() {
	if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
		echo postgresql
	fi
	if ! command -v shellcheck >/dev/null; then
		echo shellcheck
	fi
	if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
		echo python3-venv
	fi
}

# usage: _install_apt_packages
_install_apt_packages() {
	local missing
	mapfile -t missing < <(_missing_apt_packages)
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

# usage: _setup_docker
# tests/docker/setup.sh prepares the Docker engine and writes build/docker.env.
_setup_docker() {
	if [ -f "$REPO/tests/docker/setup.sh" ]; then
		bash "$REPO/tests/docker/setup.sh"
	fi
	if [ -f "$REPO/build/docker.env" ]; then
		set -a
		# shellcheck source=/dev/null
		. "$REPO/build/docker.env"
		set +a
	fi
}

# usage: _run_pytest [PYTEST_ARGS...]
_run_pytest() {
	local code=0
	# testpaths (not a literal "tests" argument) so that `run.sh tests/x.py`
	# runs only that file, while plain `run.sh` or `run.sh -k name` runs all.
	"$VENV/bin/python" -m pytest -o testpaths=tests "$@" || code=$?
	if [ "$code" -eq 5 ]; then
		_log "error: pytest collected no tests; check the arguments ($*) and tests/."
		return 1
	fi
	return "$code"
}

# usage: _main [PYTEST_ARGS...]
_main() {
	cd "$REPO"
	_install_apt_packages
	_ensure_venv
	_setup_docker
	export PATH="$VENV/bin:$PATH"
	_run_pytest "$@"
}

_main "$@"
