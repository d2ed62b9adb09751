# migrate-init: an init container that gets the database ready before the app starts.
#
#   docker build -t migrate-init .
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.12-slim -t migrate-init .
#
# When the build context has wheels/*.whl, the build installs from them with no
# index (air-gapped builds and CI: tests/image/setup.sh fills wheels/).
#
# Both stages use BASE_IMAGE, so the venv built in the first one finds the same
# interpreter, at the same path, in the second.
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

# The runtime venv is made --without-pip: pip and its vendored libraries would be
# about 15 MB of the image, used only when EXTRA_PIP_PACKAGES is set, and the base
# image ships pip already. The build (here) and migrate_init/deps.py (at run time)
# both use the base interpreter's pip: `python3 -m pip --python VENV` here, and
# `--target DEPS_TARGET` there.
COPY requirements.txt wheel[s] /build/
RUN set -eux; \
    python3 -m venv --without-pip /opt/venv; \
    set --; \
    for wheel in /build/*.whl; do \
        if [ -e "$wheel" ]; then set -- --no-index --find-links /build; fi; \
        break; \
    done; \
    python3 -m pip --python /opt/venv/bin/python install \
        --no-cache-dir --no-compile --disable-pip-version-check --root-user-action=ignore \
        "$@" --requirement /build/requirements.txt; \
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
    # the image is read-only at run time (PYTHONDONTWRITEBYTECODE=1): compile now;
    # unchecked-hash pycs are used without a stat() of their source, which never changes
    /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash "$site"

# The application: the code layer comes after the dependency layer.
COPY migrate.py alembic.ini docker-entrypoint.sh /stage/app/
COPY migrate_init/ /stage/app/migrate_init/
COPY migrations/ /stage/app/migrations/
RUN set -eux; \
    find /stage -depth -name __pycache__ -type d -exec rm -rf {} +; \
    mkdir -p /stage/usr/local/bin; \
    mv /stage/app/docker-entrypoint.sh /stage/usr/local/bin/docker-entrypoint.sh; \
    chmod -R u=rwX,go=rX /stage; \
    chmod 0755 /stage/usr/local/bin/docker-entrypoint.sh /stage/app/migrate.py; \
    # checked-hash: a migrations folder mounted over /app/migrations still wins over these pycs
    /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /stage/app

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="migrate-init" \
      org.opencontainers.image.description="Init container: installs missing Python packages, waits for the database, runs the layered Alembic upgrade, verifies, exits with a meaningful code."

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

# The stdlib modules a run imports get their pycs here, once, by a real run against a
# throw-away SQLite file: slim images ship the stdlib without pycs, and the root
# filesystem is read-only at run time. This also smoke-tests the image.
RUN set -eux; \
    env -u PYTHONDONTWRITEBYTECODE DATA_DIR=/tmp/warm-up python /app/migrate.py; \
    env -u PYTHONDONTWRITEBYTECODE DATA_DIR=/tmp/warm-up python /app/migrate.py status; \
    rm -rf /tmp/warm-up /tmp/*

WORKDIR /app
USER 10001:0
VOLUME /app/backend/data
ENTRYPOINT ["docker-entrypoint.sh"]
