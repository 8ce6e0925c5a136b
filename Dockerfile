# One image for the four services; docker-compose.yml gives each its command and settings.
# Settings and secrets come from the environment at run time, never from this file.
FROM python:3.11-slim

# MALLOC_ARENA_MAX=1: one malloc heap, which gives Argon2's buffers back once idle, even when
# a thread (an APM agent's) starts before the service can ask for it (shared/memory.py).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
# The image installs the runtime alone: [project].dependencies, read as written (pip cannot
# install a project's dependencies without its code, and `pip install .` here would redo
# this layer on every code change). The extras (cli, local servers, dev) are never installed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code: what .dockerignore lets into the build context (an allow-list: the service
# packages, shared/ with the generated protobuf modules, sql/). A new service is one line there.
COPY . .
RUN python -m compileall -q .

# Run as an unprivileged user that owns nothing in /app.
# It owns only /var/lib/auth, where auth_service keeps its signing key, /var/lib/spool, where
# user_api and auth_service spool the events that wait for NATS, and /secrets, where compose's one-shot
# `secrets` step writes the development secrets (volumes in compose).
RUN groupadd --system --gid 10001 micro \
    && useradd --system --uid 10001 --gid micro --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin micro \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/auth /var/lib/spool /secrets
USER 10001:10001

# Compose sets one per service (`grpc` or `http`); with no mode it picks by HTTP_PORT.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck"]

CMD ["python", "-m", "user_api"]
