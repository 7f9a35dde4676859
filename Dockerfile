# syntax=docker/dockerfile:1
# callmeter-exporter container image.
#
#   docker build -t callmeter-exporter .
#   docker run --rm -p 127.0.0.1:10190:10190 callmeter-exporter --demo
#
# Keeping what the exporter knows across restarts (see docs/restarts.md):
#   docker run --read-only -v callmeter-state:/var/lib/callmeter-exporter \
#     -e CALLMETER_STATE_FILE=/var/lib/callmeter-exporter/state.json ... callmeter-exporter
#
# Stage 1 builds wheels for the exporter and every dependency; stage 2 installs
# them into a clean slim image, so no compiler, source tree or pip cache ships.
# Bump both FROM lines together: the wheels are built for that exact Python.

FROM python:3.12.12-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore lets through only what the wheel needs (pyproject, README, exporter/).
COPY . .
RUN pip wheel --wheel-dir /wheels .

FROM python:3.12.12-slim-bookworm

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="callmeter-exporter" \
      org.opencontainers.image.description="Prometheus exporter for CallMeter: probe health and SIP call quality, polled in the background within the API rate limit" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/callmeter/callmeter-exporter" \
      org.opencontainers.image.url="https://github.com/callmeter/callmeter-exporter" \
      org.opencontainers.image.documentation="https://callmeter.github.io/callmeter-exporter/" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-bookworm"

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time; the
# install step below compiles .pyc files ahead, so nothing needs writing later.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CALLMETER_LISTEN_ADDRESS=0.0.0.0:10190

# The wheels are bind-mounted from the build stage, so they never land in a layer.
# Only local wheels are installed (--no-index): versions are those pinned by the build stage.
# /var/lib/callmeter-exporter is the one folder the exporter may write, for its state file
# (CALLMETER_STATE_FILE, off by default). Under a read-only root filesystem it is writable only
# with a volume mounted on it; a new named volume copies this folder's owner and mode, so the
# non-root user can write it with no chown (the command is at the top of this file).
# No VOLUME instruction: it would give every container a fresh anonymous volume, which looks like
# persistence but goes with the container. Without a mounted volume, the exporter refuses a state
# file at start (exit 2, naming the folder) instead of silently losing it.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl \
    && pip uninstall --yes pip setuptools wheel \
    && install -d -o 65532 -g 65532 -m 0700 /var/lib/callmeter-exporter

# A numeric uid/gid that exists nowhere in /etc/passwd: Kubernetes' runAsNonRoot
# can only verify a numeric USER, and the process needs no home directory.
USER 65532:65532

EXPOSE 10190

ENTRYPOINT ["callmeter-exporter"]
