#!/usr/bin/env bash
# Prepares a Docker engine for the end-to-end tests (issue 3), on a developer's
# machine or on CI, where there is no container registry and containers cannot
# reach the package indexes:
#   - installs Debian's docker.io and docker-compose (1.29) when they are missing;
#   - starts dockerd when it is not running (vfs storage when overlay fails);
#   - uses python:3.12-slim when it can be pulled, else builds a stand-in base
#     from Debian packages with debootstrap and `docker import`;
#   - does the same for the postgres image used by docker-compose.postgres.yaml and the
#     mariadb image used by docker-compose.mariadb.yaml (stand-ins from Debian's
#     postgresql-15 and mariadb-server 10.11, with entrypoints that honour the official
#     images' variables);
#   - for docker-compose.pgbouncer.yaml, whose build runs apt-get in a container: when
#     debian:bookworm-slim cannot be pulled, a stand-in with Debian's pgbouncer and the
#     compose file's own entrypoint (PGBOUNCER_IMAGE, which Compose then uses, not builds);
#   - downloads wheels for requirements.lock (hash-checked) on the host into wheels/, for the
#     base image's Python, so the image builds with no index; the same for each example's
#     requirements.txt, into examples/*/wheels/;
#   - writes build/docker.env (KEY=VALUE lines) for tests/run.sh to source.
# Idempotent: a second run finds everything in place and takes a few seconds.
set -Eeuo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly ROOT
readonly BUILD_DIR="$ROOT/build"
readonly WHEELS_DIR="$ROOT/wheels"
readonly DEFAULT_BASE_IMAGE='python:3.12-slim'
readonly DEFAULT_POSTGRES_IMAGE='postgres:16'
readonly DEFAULT_MARIADB_IMAGE='mariadb:11'
# docker-compose.pgbouncer.yaml builds its image on this (deploy/compose/pgbouncer/Dockerfile)
readonly PGBOUNCER_BUILD_BASE='debian:bookworm-slim'
readonly DEFAULT_PGBOUNCER_IMAGE='migrate-init-pgbouncer:local'
readonly SUITE='bookworm'
readonly PULL_TIMEOUT="${DOCKER_PULL_TIMEOUT:-60}"
# bump to rebuild the stand-in images (their tags also hash their package lists and scripts)
readonly STANDIN_RECIPE=1

# usage: setup_log MESSAGE...
setup_log() {
	printf 'setup: %s\n' "$*" >&2
}

# usage: setup_die MESSAGE...
setup_die() {
	printf 'setup: error: %s\n' "$*" >&2
	exit 1
}

# usage: _apt_install PACKAGE...
#    ie: _apt_install docker.io docker-compose
_apt_install() {
	if [ -z "${_apt_updated:-}" ]; then
		apt-get update -qq
		_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# usage: setup_install_engine
#   installs the engine, the Compose 1.29 client and debootstrap when missing
setup_install_engine() {
	local missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	command -v docker >/dev/null || missing+=(docker.io)
	command -v docker-compose >/dev/null || missing+=(docker-compose)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	if [ "${#missing[@]}" -gt 0 ]; then
		setup_log "installing ${missing[*]}"
		_apt_install "${missing[@]}"
	fi
}

# usage: _wait_for_engine SECONDS
_wait_for_engine() {
	local deadline=$((SECONDS + $1))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if docker info >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# usage: _start_dockerd [DOCKERD-OPTION...]
#   starts dockerd in the background, detached from this script, logging to build/dockerd.log
_start_dockerd() {
	setup_log "starting dockerd $* (log: $BUILD_DIR/dockerd.log)"
	setsid nohup dockerd "$@" >>"$BUILD_DIR/dockerd.log" 2>&1 </dev/null &
	_dockerd_pid=$!
}

# usage: setup_start_engine
setup_start_engine() {
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	_start_dockerd
	if _wait_for_engine 60; then
		return 0
	fi
	# overlay2 is refused on some filesystems (overlay on overlay, old kernels): vfs is slow but works anywhere
	setup_log "dockerd did not come up with its default storage driver; retrying with vfs"
	kill "$_dockerd_pid" 2>/dev/null || true
	wait "$_dockerd_pid" 2>/dev/null || true
	rm -f /var/run/docker.pid
	_start_dockerd --storage-driver=vfs
	_wait_for_engine 60 || setup_die "dockerd did not start; see $BUILD_DIR/dockerd.log"
}

# usage: _image_exists IMAGE
_image_exists() {
	docker image inspect "$1" >/dev/null 2>&1
}

# usage: _try_pull IMAGE
#   true when IMAGE is present locally or could be pulled within PULL_TIMEOUT seconds
_try_pull() {
	if _image_exists "$1"; then
		return 0
	fi
	setup_log "pulling $1"
	timeout "$PULL_TIMEOUT" docker pull -q "$1" >/dev/null 2>&1
}

# usage: _debian_mirror
#   prints the Debian mirror this machine's apt uses
_debian_mirror() {
	local uri
	uri="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\/\{0,1\}\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)"
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list)"
	fi
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# usage: _remove_rootfs DIR
#   a debootstrap that failed half-way leaves /proc (and more) mounted inside DIR:
#   unmount those first, so that rm never walks into the host's /proc or /sys
_remove_rootfs() {
	local dir="$1" mnt
	[ -e "$dir" ] || return 0
	while read -r mnt; do
		umount -l "$mnt"
	done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
	rm -rf --one-file-system "$dir"
}

# usage: _bootstrap_rootfs DIR PACKAGES
#    ie: _bootstrap_rootfs build/rootfs python3,python3-venv
_bootstrap_rootfs() {
	local dir="$1" include="$2" try
	mkdir -p "$BUILD_DIR/debootstrap-cache"
	for try in 1 2 3; do
		_remove_rootfs "$dir"
		mkdir -p "$dir"
		setup_log "debootstrap $SUITE (minbase, +$include) into $dir (try $try)"
		if debootstrap --variant=minbase --include="$include" \
			--cache-dir="$BUILD_DIR/debootstrap-cache" \
			"$SUITE" "$dir" "$(_debian_mirror)" >"$BUILD_DIR/debootstrap.log" 2>&1; then
			return 0
		fi
		# a mirror hiccup fails a download now and then; the cache keeps what already arrived
		sleep 2
	done
	setup_die "debootstrap failed 3 times; see $BUILD_DIR/debootstrap.log"
}

# usage: _trim_rootfs DIR
#   what a slim image leaves out: apt lists, caches, docs, man pages, locales
_trim_rootfs() {
	local dir="$1"
	rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
		"$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
		"$dir"/var/log/* "$dir"/tmp/* "$dir"/debootstrap
	find "$dir"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
	# the stand-in must not hand the host's resolver or name to containers
	: >"$dir/etc/resolv.conf"
	printf 'localhost\n' >"$dir/etc/hostname"
}

# usage: _import_rootfs DIR TAG [--change INSTRUCTION]...
_import_rootfs() {
	local dir="$1" tag="$2"
	shift 2
	tar --numeric-owner -C "$dir" -c . | docker import "$@" - "$tag" >/dev/null
	_remove_rootfs "$dir"
	setup_log "imported $tag"
}

# usage: _content_tag PREFIX FILE-OR-STRING...
#   a tag that changes when the recipe changes, so a stale stand-in is rebuilt, never reused
_content_tag() {
	local prefix="$1"
	shift
	printf '%s:%s' "$prefix" "$(cat "$@" | sha256sum | cut -c1-12)"
}

# usage: _remove_stale_tags REPOSITORY KEEP-TAG
#   stand-ins of an older recipe are never used again: free their space
_remove_stale_tags() {
	local repository="$1" keep="$2" image
	while read -r image; do
		if [ "$image" != "$keep" ]; then
			docker rmi "$image" >/dev/null 2>&1 || true
		fi
	done < <(docker images --format '{{.Repository}}:{{.Tag}}' "$repository")
}

# usage: _chroot_install DIR PACKAGE...
#   apt-get install PACKAGE... (no recommends) inside the debootstrapped DIR
_chroot_install() {
	local dir="$1"
	shift
	# never let a maintainer script start a daemon on the host from inside the chroot
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 0755 "$dir/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
	chroot "$dir" apt-get update -qq >>"$BUILD_DIR/debootstrap.log" 2>&1
	DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends "$@" \
		>>"$BUILD_DIR/debootstrap.log" 2>&1 || setup_die "installing $* failed; see $BUILD_DIR/debootstrap.log"
	rm -f "$dir/usr/sbin/policy-rc.d"
}

# usage: _build_standin NAME ROOTFS-TAG CONTEXT-FILE...
#   builds tests/image/NAME-standin (its Dockerfile, on ROOTFS-TAG) and prints its tag, which
#   hashes the CONTEXT-FILEs (named in a fixed order): the entrypoint goes in a layer of its own,
#   so that editing it rebuilds in a second, not a debootstrap
#    ie: _build_standin postgres "$rootfs" Dockerfile docker-entrypoint.sh
_build_standin() {
	local name="$1" rootfs="$2" context="$ROOT/tests/image/$1-standin" tag
	shift 2
	tag="$(_content_tag "migrate-init-standin/$name" <(printf '%s' "$rootfs") "${@/#/$context/}")"
	if ! _image_exists "$tag"; then
		docker build -q --build-arg ROOTFS="$rootfs" -t "$tag" "$context" >"$BUILD_DIR/$name-standin.log" 2>&1 \
			|| setup_die "building $tag failed; see $BUILD_DIR/$name-standin.log"
		setup_log "built $tag"
	fi
	_remove_stale_tags "migrate-init-standin/$name-rootfs" "$rootfs"
	_remove_stale_tags "migrate-init-standin/$name" "$tag"
	printf '%s\n' "$tag"
}

# usage: setup_base_image
#   prints the image to build on: BASE_IMAGE when set, python:3.12-slim when it can be
#   pulled, else a stand-in made from Debian packages (cached by its tag)
setup_base_image() {
	if [ -n "${BASE_IMAGE:-}" ]; then
		_image_exists "$BASE_IMAGE" || _try_pull "$BASE_IMAGE" \
			|| setup_die "BASE_IMAGE=$BASE_IMAGE is neither present nor pullable; unset BASE_IMAGE to use a stand-in."
		printf '%s\n' "$BASE_IMAGE"
		return 0
	fi
	if _try_pull "$DEFAULT_BASE_IMAGE"; then
		printf '%s\n' "$DEFAULT_BASE_IMAGE"
		return 0
	fi
	local packages='python3,python3-venv,python3-pip,ca-certificates' tag
	tag="$(_content_tag migrate-init-standin/python <(printf '%s %s %s' "$STANDIN_RECIPE" "$SUITE" "$packages"))"
	if ! _image_exists "$tag"; then
		setup_log "$DEFAULT_BASE_IMAGE cannot be pulled; building the stand-in base $tag"
		local dir="$BUILD_DIR/rootfs-python"
		_bootstrap_rootfs "$dir" "$packages"
		_trim_rootfs "$dir"
		_import_rootfs "$dir" "$tag" \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' \
			--change 'CMD ["python3"]'
	fi
	_remove_stale_tags migrate-init-standin/python "$tag"
	printf '%s\n' "$tag"
}

# usage: _postgresql_common_rootfs NAME PACKAGE WANTED-IMAGE
#   prints the tag of a debootstrapped rootfs with PACKAGE (which pulls in postgresql-common),
#   imported once when it is missing because WANTED-IMAGE cannot be pulled
_postgresql_common_rootfs() {
	local name="$1" package="$2" wanted="$3" rootfs
	rootfs="$(_content_tag "migrate-init-standin/$name-rootfs" <(printf '%s %s %s' "$STANDIN_RECIPE" "$SUITE" "$package"))"
	if ! _image_exists "$rootfs"; then
		setup_log "$wanted cannot be pulled; building the stand-in $rootfs"
		local dir="$BUILD_DIR/rootfs-$name"
		_bootstrap_rootfs "$dir" 'ca-certificates'
		# the package's own cluster would need /dev/shm in the chroot; the entrypoint runs initdb instead
		mkdir -p "$dir/etc/postgresql-common/createcluster.d"
		printf 'create_main_cluster = false\n' >"$dir/etc/postgresql-common/createcluster.d/no-main.conf"
		_chroot_install "$dir" "$package"
		_trim_rootfs "$dir"
		_import_rootfs "$dir" "$rootfs"
	fi
	printf '%s\n' "$rootfs"
}

# usage: setup_postgres_image
#   prints the image for the postgres service: postgres:16 when it can be pulled, else a
#   stand-in with Debian's PostgreSQL and an entrypoint that honours the same variables
setup_postgres_image() {
	if [ -n "${POSTGRES_IMAGE:-}" ]; then
		printf '%s\n' "$POSTGRES_IMAGE"
		return 0
	fi
	if _try_pull "$DEFAULT_POSTGRES_IMAGE"; then
		printf '%s\n' "$DEFAULT_POSTGRES_IMAGE"
		return 0
	fi
	local rootfs
	rootfs="$(_postgresql_common_rootfs postgres postgresql-15 "$DEFAULT_POSTGRES_IMAGE")"
	_build_standin postgres "$rootfs" Dockerfile docker-entrypoint.sh
}

# usage: setup_mariadb_image
#   prints the image for the mariadb service: mariadb:11 when it can be pulled, else a stand-in
#   with Debian's mariadb-server (10.11) and an entrypoint that honours the same variables
setup_mariadb_image() {
	if [ -n "${MARIADB_IMAGE:-}" ]; then
		printf '%s\n' "$MARIADB_IMAGE"
		return 0
	fi
	if _try_pull "$DEFAULT_MARIADB_IMAGE"; then
		printf '%s\n' "$DEFAULT_MARIADB_IMAGE"
		return 0
	fi
	local rootfs
	rootfs="$(_content_tag migrate-init-standin/mariadb-rootfs <(printf '%s %s mariadb-server' "$STANDIN_RECIPE" "$SUITE"))"
	if ! _image_exists "$rootfs"; then
		setup_log "$DEFAULT_MARIADB_IMAGE cannot be pulled; building the stand-in $rootfs"
		local dir="$BUILD_DIR/rootfs-mariadb"
		_bootstrap_rootfs "$dir" 'ca-certificates'
		_chroot_install "$dir" mariadb-server
		# the package's postinst made system tables; the entrypoint makes them on the first start,
		# with the accounts the variables ask for, as the official image does with an empty volume
		rm -rf "${dir:?}"/var/lib/mysql/*
		_trim_rootfs "$dir"
		_import_rootfs "$dir" "$rootfs"
	fi
	_build_standin mariadb "$rootfs" Dockerfile docker-entrypoint.sh 90-standin.cnf
}

# usage: setup_pgbouncer_image
#   prints the image for the pgbouncer service: the tag the compose file builds when its base
#   can be pulled (that build then runs there), else a stand-in from Debian's pgbouncer with
#   deploy/compose/pgbouncer/'s entrypoint, which Compose runs instead of building
setup_pgbouncer_image() {
	if [ -n "${PGBOUNCER_IMAGE:-}" ]; then
		printf '%s\n' "$PGBOUNCER_IMAGE"
		return 0
	fi
	if _try_pull "$PGBOUNCER_BUILD_BASE"; then
		printf '%s\n' "$DEFAULT_PGBOUNCER_IMAGE"
		return 0
	fi
	local rootfs
	rootfs="$(_postgresql_common_rootfs pgbouncer pgbouncer "$PGBOUNCER_BUILD_BASE")"
	# the entrypoint is the compose file's own (deploy/compose/pgbouncer/), copied into the
	# stand-in's context so that the stand-in runs exactly what the real build would
	cp "$ROOT/deploy/compose/pgbouncer/pgbouncer-entrypoint.sh" "$ROOT/tests/image/pgbouncer-standin/"
	_build_standin pgbouncer "$rootfs" Dockerfile pgbouncer-entrypoint.sh
}

# usage: _host_python
#   the interpreter whose pip downloads the wheels: the project's .venv when it exists
_host_python() {
	if [ -x "$ROOT/.venv/bin/python" ]; then
		printf '%s\n' "$ROOT/.venv/bin/python"
	else
		command -v python3
	fi
}

# usage: _base_python BASE_IMAGE
#   prints the base image's Python version, X.Y
_base_python() {
	docker run --rm --network none --entrypoint python3 "$1" \
		-c 'import sys; print("%d.%d" % sys.version_info[:2])' \
		|| setup_die "cannot run python3 in $1"
}

# usage: _download_wheels PYVER DEST REQUIREMENTS [PIP-OPTION...]
#   binary wheels of REQUIREMENTS for Python PYVER on this machine's architecture into DEST,
#   once per content of REQUIREMENTS (a stamp in DEST says which)
_download_wheels() {
	local pyver="$1" dest="$2" requirements="$3" arch stamp_want
	shift 3
	arch="$(uname -m)"
	stamp_want="$(cat "$requirements" - <<<"$pyver $arch $*" | sha256sum | cut -c1-16)"
	if [ "$(cat "$dest/.stamp" 2>/dev/null || true)" = "$stamp_want" ]; then
		return 0
	fi
	setup_log "downloading wheels of ${requirements#"$ROOT"/} for Python $pyver ($arch) into ${dest#"$ROOT"/}"
	rm -rf "$dest"
	mkdir -p "$dest"
	local platforms=(--platform "manylinux2014_$arch") minor
	# glibc 2.17 (manylinux2014) up to bookworm's 2.36: every tag a wheel of ours may carry
	for minor in $(seq 17 36); do
		platforms+=(--platform "manylinux_2_${minor}_$arch")
	done
	"$(_host_python)" -m pip download --disable-pip-version-check \
		--only-binary=:all: --implementation cp --python-version "$pyver" "${platforms[@]}" \
		--dest "$dest" "$@" --requirement "$requirements" >"$BUILD_DIR/pip-download.log" 2>&1 \
		|| setup_die "pip download failed for Python $pyver; see $BUILD_DIR/pip-download.log"
	printf '%s\n' "$stamp_want" >"$dest/.stamp"
}

# usage: setup_wheels BASE_IMAGE
#   fills wheels/ with binary wheels of requirements.lock for the base image's Python; the
#   lock's hashes are checked here and again by the Dockerfile's pip install --require-hashes.
#   Each example's wheels/ gets its requirements.txt the same way (examples/*/Dockerfile, target app).
setup_wheels() {
	local pyver example
	pyver="$(_base_python "$1")"
	_download_wheels "$pyver" "$WHEELS_DIR" "$ROOT/requirements.lock" --require-hashes
	for example in "$ROOT"/examples/*/requirements.txt; do
		[ -e "$example" ] || continue
		_download_wheels "$pyver" "$(dirname "$example")/wheels" "$example"
	done
}

# usage: setup_write_env KEY=VALUE...
setup_write_env() {
	printf '%s\n' "$@" >"$BUILD_DIR/docker.env.tmp"
	mv "$BUILD_DIR/docker.env.tmp" "$BUILD_DIR/docker.env"
}

_main() {
	mkdir -p "$BUILD_DIR"
	setup_install_engine
	setup_start_engine
	local base postgres mariadb pgbouncer
	base="$(setup_base_image)"
	postgres="$(setup_postgres_image)"
	mariadb="$(setup_mariadb_image)"
	pgbouncer="$(setup_pgbouncer_image)"
	setup_wheels "$base"
	setup_write_env "BASE_IMAGE=$base" "POSTGRES_IMAGE=$postgres" "MARIADB_IMAGE=$mariadb" \
		"PGBOUNCER_IMAGE=$pgbouncer"
	setup_log "ready: BASE_IMAGE=$base POSTGRES_IMAGE=$postgres MARIADB_IMAGE=$mariadb" \
		"PGBOUNCER_IMAGE=$pgbouncer ($BUILD_DIR/docker.env)"
}

_main "$@"
