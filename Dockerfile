# syntax=docker/dockerfile:1
# One image for every service and for the migrations:
#   docker run IMAGE                                  -> webhook gateway (default)
#   docker run IMAGE python -m services.db_writer     -> any other service
#   docker run IMAGE python -m shared.migrate         -> apply the yoyo migrations
#   docker run IMAGE python -m ingestctl status       -> the operator CLI

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: resolve the runtime dependencies, pinned by the lock, into a venv -------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /build
COPY pyproject.toml requirements.lock ./
# requirements.lock pins runtime AND dev tools; the image wants only the runtime ones. So the
# project's own dependency list is installed with the lock as constraints: same versions as
# tested, no pytest/mypy/kubernetes-validate. Wheels only: a missing wheel fails the build
# loudly instead of quietly needing a compiler.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime.txt \
    && /opt/venv/bin/pip install --only-binary=:all: -r runtime.txt -c requirements.lock

# --- final: the venv and the source, nothing else ------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="turnio-ingest" \
      org.opencontainers.image.description="Turn.io webhooks and Data Export into PostgreSQL, exactly once" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
RUN groupadd --system --gid 10001 turnio \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin turnio
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
COPY migrations/ migrations/
COPY ingestctl/ ingestctl/
# Byte-compile now: the root filesystem is read-only in the cluster, so Python cannot later.
RUN python -m compileall -q shared services ingestctl
USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "services.webhook_gateway"]
