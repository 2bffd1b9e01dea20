# syntax=docker/dockerfile:1
#
# ghcr.io/billing-platform/payments: the Payments service (gRPC); commands serve, migrate.
# Build from the repository root (payments.Dockerfile.dockerignore applies with BuildKit):
#   docker build -f deploy/docker/payments.Dockerfile -t ghcr.io/billing-platform/payments:<version> .
#
# Only what this component imports is copied: the project metadata, the generated protobuf stubs,
# svckit and payments_svc. pyproject.toml finds packages by pattern, so `pip install .` installs just
# those. No secret and no configuration: everything comes from the environment (deploy/k8s).

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/billing
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos/gen/python protos/gen/python
COPY svckit svckit
COPY payments_svc payments_svc
RUN /opt/billing/bin/pip install . \
    && /opt/billing/bin/python -c "import payments_svc.__main__"

FROM python:3.11.11-slim-bookworm
# The root filesystem is read-only in Kubernetes: no bytecode written at run time.
ENV PATH=/opt/billing/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin billing
COPY --from=build /opt/billing /opt/billing
WORKDIR /app
# Numeric, so that Kubernetes can check runAsNonRoot against it.
USER 10001:10001
EXPOSE 50051 9090
# The Deployment's command; its Jobs run other commands of the same module.
CMD ["python", "-m", "payments_svc", "serve"]
