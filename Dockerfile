# migrate-init: an init container that gets the database ready before the app starts.
#
#   docker build -t migrate-init:0.3.0 .
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t migrate-init:0.3.0 .   # a release
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.12-slim -t migrate-init:0.3.0 .
#
# When the build context has wheels/*.whl, the build installs from them with no
# index (air-gapped builds and CI: tests/image/setup.sh fills wheels/).
#
# Both stages use BASE_IMAGE, so the venv built in the first one finds the same
# interpreter, at the same path, in the second.
# checkov:skip=CKV_DOCKER_7:BASE_IMAGE is a build argument (default python:3.12-slim, a fixed minor version); air-gapped builds pass their own base (docs/air-gapped.md)
ARG BASE_IMAGE=python:3.12-slim
# The image's OCI labels (at the end of this file). VERSION must equal __version__ in
# migrate_init/__init__.py, the one place the version lives: the build fails otherwise, and
# tests/image/test_labels.py checks this default. REVISION is the git commit and SOURCE the
# repository's URL; a release passes both.
ARG VERSION=0.3.0
ARG REVISION=""
ARG SOURCE=""

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

# The runtime venv is made --without-pip: pip and its vendored libraries would be
# about 15 MB of the image, used only when EXTRA_PIP_PACKAGES is set, and the base
# image ships pip already. The build (here) and migrate_init/deps.py (at run time)
# both use the base interpreter's pip: `python3 -m pip --python VENV` here, and
# `--target DEPS_TARGET` there.
# requirements.lock: requirements.txt with every dependency pinned and hashed (pip-tools'
# pip-compile --generate-hashes; CONTRIBUTING.md says how to regenerate it). pip refuses any
# file whose hash is not in it, from the index or from wheels/ alike.
COPY requirements.lock wheel[s] /build/
RUN set -eux; \
    python3 -m venv --without-pip /opt/venv; \
    set --; \
    for wheel in /build/*.whl; do \
        if [ -e "$wheel" ]; then set -- --no-index --find-links /build; fi; \
        break; \
    done; \
    python3 -m pip --python /opt/venv/bin/python install \
        --no-cache-dir --no-compile --disable-pip-version-check --root-user-action=ignore \
        "$@" --require-hashes --requirement /build/requirements.lock; \
    site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"; \
    # not needed to run: type stubs, C and Cython sources, the libraries' own test
    # harnesses (sqlalchemy.testing, alembic.testing and the dialects' provision.py
    # are imported by test suites only)
    find "$site" -depth \( -name '*.pyi' -o -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' \) -type f -delete; \
    rm -rf "$site/sqlalchemy/testing" "$site/alembic/testing" "$site"/sqlalchemy/dialects/*/provision.py /build; \
    # SQLAlchemy's Cython accelerators are optional (it falls back to its pure-Python
    # code) and ship with debug info that slim images have no `strip` for: 9 MB for
    # no measurable gain on a few DDL statements (a full run: ~0.9 s either way)
    find "$site/sqlalchemy" -name '*_cy.*.so' -type f -delete; \
    # sqlglot reads DDL for the MySQL/MariaDB destructive guard, in its MySQL dialect only:
    # 7.7 MB installed, of which these 3.3 MB are never loaded (docs/image.md). Its other
    # dialects (each a dialect, a parser, a generator and a typing module) load by name
    # only; T-SQL stays, because the generator imports it for CONVERT. The executor,
    # planner, lineage, anonymizer, CLI and the optimizer's rules serve optimize(), SQL run
    # in Python and lineage, which the guard never calls: no module left imports them, not
    # even inside a function (tests/image/test_image.py checks that, and the statements).
    sg="$site/sqlglot"; \
    for module in "$sg"/dialects/*.py "$sg"/parsers/*.py "$sg"/generators/*.py "$sg"/typing/*.py; do \
        case "${module##*/}" in \
            __init__.py | dialect.py | base.py | mysql.py | tsql.py) ;; \
            *) rm "$module" ;; \
        esac; \
    done; \
    rm -r "$sg/executor" "$sg/planner.py" "$sg/lineage.py" "$sg/anonymize.py" "$sg/__main__.py"; \
    for rule in canonicalize_internal_names eliminate_ctes eliminate_joins eliminate_subqueries helpers \
        isolate_table_selects journal merge_subqueries optimize_joins optimizer pushdown_predicates \
        pushdown_projections qualify qualify_tables unnest_subqueries; do \
        rm "$sg/optimizer/$rule.py"; \
    done; \
    # the image is read-only at run time (PYTHONDONTWRITEBYTECODE=1): compile now;
    # unchecked-hash pycs are used without a stat() of their source, which never changes
    /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site"; \
    # fail the build, not a MySQL run, if the trim went too far: every module left imports,
    # and the guard's kinds of statement parse and print
    /opt/venv/bin/python -B -c 'import importlib, logging, pkgutil, sqlglot; logging.disable(logging.WARNING); \
        [importlib.import_module(m.name) for m in pkgutil.walk_packages(sqlglot.__path__, "sqlglot.")]; \
        sql = "CREATE TABLE t (a INT NOT NULL); ALTER TABLE t ADD b TEXT, DROP COLUMN a, MODIFY b INT NULL; \
               RENAME TABLE t TO u; DROP TABLE u"; \
        assert [type(s).__name__ for s in sqlglot.parse(sql, read="mysql")] == ["Create", "Alter", "Command", "Drop"]; \
        assert sqlglot.transpile(sql, read="mysql", write="mysql")'

# The application: the code layer comes after the dependency layer.
COPY migrate.py alembic.ini docker-entrypoint.sh /stage/app/
COPY migrate_init/ /stage/app/migrate_init/
COPY migrations/ /stage/app/migrations/
# Apache-2.0 section 4(a): whoever receives the image receives the licence with it.
COPY LICENSE /stage/usr/share/doc/migrate-init/LICENSE
ARG VERSION
RUN set -eux; \
    code_version="$(/opt/venv/bin/python -B -c 'import sys; sys.path.insert(0, "/stage/app"); import migrate_init; print(migrate_init.__version__)')"; \
    if [ "$code_version" != "$VERSION" ]; then \
        echo "error: the build argument VERSION=$VERSION differs from __version__ = $code_version in migrate_init/__init__.py; pass --build-arg VERSION=$code_version, or update ARG VERSION in the Dockerfile." >&2; \
        exit 1; \
    fi; \
    find /stage -depth -name __pycache__ -type d -exec rm -rf {} +; \
    mkdir -p /stage/usr/local/bin; \
    mv /stage/app/docker-entrypoint.sh /stage/usr/local/bin/docker-entrypoint.sh; \
    chmod -R u=rwX,go=rX /stage; \
    chmod 0755 /stage/usr/local/bin/docker-entrypoint.sh /stage/app/migrate.py; \
    # checked-hash: a migrations folder mounted over /app/migrations still wins over these pycs
    /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /stage/app

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# DATA_DIR (not DATABASE_URL) sets the default database, sqlite:////app/backend/data/webui.db,
# so that DATABASE_URL_FILE stays usable: setting both is refused, docker-library style.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/app/backend/data \
    DEPS_TARGET=/app/backend/data/python-deps

# A fixed non-root UID whose group is 0, and a data folder that group 0 can write:
# OpenShift runs the image as an arbitrary UID with GID 0, Kubernetes as 10001.
RUN set -eux; \
    useradd --uid 10001 --gid 0 --home-dir /app --no-create-home --shell /usr/sbin/nologin migrate; \
    mkdir -p /app/backend/data; \
    chown 10001:0 /app/backend/data; \
    chmod 0775 /app/backend/data

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /stage/ /

# The fast path's manifest (migrate_init/manifest.py): the scripts' heads, the models'
# tables and a hash of both, so that a run with nothing to do loads neither SQLAlchemy
# nor Alembic (issue 7). Baked here: the root filesystem is read-only at run time.
RUN set -eux; \
    python /app/migrate.py manifest

# Kept on purpose (issue 16 asked): a real run against a throw-away SQLite file in /tmp,
# so that the stdlib modules a run imports get their pycs, once. Slim images ship the
# stdlib without pycs and the root filesystem is read-only at run time, so without this
# every start would compile them again; only a real run knows which modules those are
# (compiling the whole stdlib would add tens of MB). It runs as root because those pycs
# go into the base image's stdlib folders. It touches no database but its own, removed
# in this same layer, and it fails the build of an image that cannot migrate. The
# behaviour itself is tested by tests/image, not here.
RUN set -eux; \
    env -u PYTHONDONTWRITEBYTECODE DATA_DIR=/tmp/warm-up python /app/migrate.py; \
    env -u PYTHONDONTWRITEBYTECODE DATA_DIR=/tmp/warm-up python /app/migrate.py status; \
    rm -rf /tmp/warm-up /tmp/*

WORKDIR /app
USER 10001:0
# The data folder: the default SQLite database, DEPS_TARGET and the fast path's cache.
# Mount a named volume or a PersistentVolumeClaim here (docs/configuration.md). VOLUME is
# kept although it has a cost (issue 16): a derived image's RUN steps cannot leave files
# in /app/backend/data, and a `docker run` without --rm or -v leaves an anonymous volume
# behind. In exchange a read-only container (`--read-only`) with no mount still has a
# writable data folder, and tests/image/test_image.py checks that it is declared.
VOLUME /app/backend/data
ENTRYPOINT ["docker-entrypoint.sh"]
# checkov:skip=CKV_DOCKER_2:an init container runs once and exits; its exit code is its health, and a HEALTHCHECK would only run while it migrates

# Last, so that a new REVISION changes only the image's metadata, never a cached layer.
ARG VERSION
ARG REVISION
ARG SOURCE
LABEL org.opencontainers.image.title="migrate-init" \
      org.opencontainers.image.description="Init container: installs missing Python packages, waits for the database, runs the layered Alembic upgrade, verifies, exits with a meaningful code." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Written into every row of migrate_init_history, so an incident can be traced to the image (issue 26).
ENV IMAGE_REVISION="${REVISION}"
